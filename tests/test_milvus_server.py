"""Opt-in: a real Milvus server (``MILVUS_URI=http://host:19530``). Skipped when it is not set.

On a server >= 2.6.4 the collection uses the native Array-of-Structs ColBERT layout (MAX_SIM_IP,
detected at run time); on an older server the portable companion layout. Either way the weighted
hybrid must equal the brute-force reference.
"""

from __future__ import annotations

import os
import uuid

import pytest

pytestmark = pytest.mark.milvus_server
URI = os.environ.get("MILVUS_URI")
if not URI:
    pytest.skip("MILVUS_URI is not set", allow_module_level=True)

from pymilvus import MilvusClient  # noqa: E402

from m3_integrations import colbert_score, dense_score, sparse_score  # noqa: E402
from m3_integrations.milvus import count_documents, drop_collection, hybrid_search, upsert_documents  # noqa: E402
from m3_integrations.milvus._driver import run_sync  # noqa: E402
from m3_integrations.milvus._schema import open_collection, server_caps  # noqa: E402

TEXTS = [f"{a} {b} document {i}" for i, (a, b) in enumerate(
    [("river", "fox"), ("hybrid", "search"), ("vector", "database"), ("sparse", "lexical"), ("dense", "semantic"),
     ("quick", "brown"), ("lazy", "dog"), ("token", "matching")])]


@pytest.fixture
def server():
    client = MilvusClient(uri=URI, token=os.environ.get("MILVUS_TOKEN", ""))
    name = f"m3_test_{uuid.uuid4().hex[:8]}"
    yield client, name
    drop_collection(client, name)
    client.close()


def test_server_layout_and_exact_weighted(server, encoder):
    client, name = server
    caps = run_sync(client, server_caps(client))
    upsert_documents(client, TEXTS, name, encoder)
    upsert_documents(client, TEXTS, name, encoder)
    assert count_documents(client, name) == len(TEXTS)
    info = run_sync(client, open_collection(client, name))
    assert info.layout == ("native" if caps.native_multivector else "companion")
    q = encoder.encode_queries(["quick fox"])
    docs = encoder.encode_documents(TEXTS)
    ref = sorted(((0.4 * dense_score(q.dense[0], docs.dense[i]) + 0.2 * sparse_score(q.sparse[0], docs.sparse[i])
                   + 0.4 * colbert_score(q.colbert[0], docs.colbert[i])), TEXTS[i]) for i in range(len(TEXTS)))[::-1]
    hits = hybrid_search(client, "quick fox", name, encoder, limit=3, prefetch_limit=len(TEXTS))
    assert [h.score for h in hits] == pytest.approx([r[0] for r in ref[:3]], abs=2e-3)
