"""milvus-lite serves inside this process: the package's calls must not make it log tracebacks.

milvus-lite 3.x does not implement ``AllocTimestamp``; pymilvus asks for it while waiting for an index
build, and the in-process gRPC server logs ``Exception calling application: Method not implemented!``
with a traceback to any application that has configured logging."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("pymilvus")


def _noisy(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records
            if r.levelno >= logging.WARNING and ("Exception calling application" in r.getMessage() or r.exc_info)]


def test_ingest_and_hybrid_search_log_no_traceback(encoder, tmp_path, caplog):
    from pymilvus import MilvusClient

    from m3_integrations.milvus import hybrid_search, upsert_documents

    caplog.set_level(logging.INFO)
    client = MilvusClient(str(tmp_path / "quiet.db"))
    upsert_documents(client, ["tides follow the moon", "the sea is salty"], collection_name="docs", encoder=encoder)
    hits = hybrid_search(client, "moon", collection_name="docs", encoder=encoder, limit=1)
    assert hits[0].text == "tides follow the moon"
    assert _noisy(caplog.records) == []


async def test_async_client_ingest_logs_no_traceback(encoder, tmp_path, caplog):
    from pymilvus import AsyncMilvusClient

    from m3_integrations.milvus import ahybrid_search, aupsert_documents

    caplog.set_level(logging.INFO)
    client = AsyncMilvusClient(str(tmp_path / "quiet_async.db"))
    try:
        await aupsert_documents(client, ["tides follow the moon", "the sea is salty"], collection_name="docs",
                                encoder=encoder)
        hits = await ahybrid_search(client, "moon", collection_name="docs", encoder=encoder, limit=1)
    finally:
        await client.close()
    assert hits[0].text == "tides follow the moon"
    assert _noisy(caplog.records) == []
