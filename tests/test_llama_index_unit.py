"""LlamaIndex integration, the parts that need no database: M3Embedding, filter translation, alpha mapping."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from m3_integrations import M3Encoder
from m3_integrations._query import AllOf, AnyOf, Condition
from m3_integrations.llama_index import (
    M3Embedding,
    UnsupportedFilterError,
    alpha_to_weights,
    to_neutral_filter,
)
from m3_integrations.llama_index._common import adapter_for_client, resolve_encoder

TEXTS = ["hybrid retrieval with lexical matching", "the quick brown fox", "vector databases store embeddings"]


# ------------------------------------------------------------------------------------- M3Embedding
def test_embedding_is_the_dense_vector(encoder):
    emb = M3Embedding(encoder=encoder)
    assert emb.encoder is encoder
    docs = emb.get_text_embedding_batch(TEXTS)
    np.testing.assert_allclose(np.array(docs), encoder.encode_documents(TEXTS).dense, atol=1e-6)
    query = emb.get_query_embedding(TEXTS[0])
    np.testing.assert_allclose(query, encoder.encode_queries([TEXTS[0]]).dense[0], atol=1e-6)
    assert len(emb.get_text_embedding(TEXTS[1])) == encoder.dim
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)


def test_embedding_query_uses_query_length(tiny_model_dir):
    enc = M3Encoder(tiny_model_dir, device="cpu", query_max_length=8)
    emb = M3Embedding(encoder=enc)
    long = " ".join(TEXTS * 4)
    with pytest.warns(UserWarning, match="truncated"):
        q = emb.get_query_embedding(long)
    np.testing.assert_allclose(q, enc.encode(long, max_length=8).dense[0], atol=1e-6)
    d = emb.get_text_embedding(long)
    assert not np.allclose(q, d, atol=1e-4)  # documents are not truncated to the query length


def test_embedding_from_model_name_and_cache(tiny_model_dir):
    emb = M3Embedding(str(tiny_model_dir), device="cpu", cache_size=8)
    assert isinstance(emb.encoder, M3Encoder)
    assert emb.model_name == str(tiny_model_dir)
    emb.get_text_embedding_batch(TEXTS)
    passes = emb.encoder.stats.forward_passes
    out = emb.encoder.encode_documents(TEXTS)  # sparse + ColBERT of the embedded texts: from the cache
    assert emb.encoder.stats.forward_passes == passes
    assert out.sparse is not None and len(out.colbert) == len(TEXTS)


def test_embedding_rejects_bad_input(encoder):
    with pytest.raises(TypeError, match="encoder must be"):
        M3Embedding(encoder=42)
    with pytest.raises(ValueError, match="cache_size"):
        M3Embedding(encoder=encoder, cache_size=-1)


async def test_async_embedding_runs_off_the_event_loop(encoder, monkeypatch):
    emb = M3Embedding(encoder=encoder)
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real = encoder.encode

    def slow_encode(*args, **kwargs):
        seen.append(threading.get_ident())
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(encoder, "encode", slow_encode)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    q, docs, one = await asyncio.gather(
        emb.aget_query_embedding("a question"), emb.aget_text_embedding_batch(TEXTS), emb.aget_text_embedding("x"))
    task.cancel()
    assert seen and all(t != loop_thread for t in seen)
    assert ticks >= 10  # the loop kept running while the encoder slept in its worker threads
    monkeypatch.undo()
    np.testing.assert_allclose(q, encoder.encode_queries(["a question"]).dense[0], atol=1e-6)
    np.testing.assert_allclose(np.array(docs), encoder.encode_documents(TEXTS).dense, atol=1e-6)
    assert len(one) == encoder.dim


# ------------------------------------------------------------------------------------------ filters
def _f(key, value, op=FilterOperator.EQ):
    return MetadataFilter(key=key, value=value, operator=op)


def test_filters_every_supported_operator():
    cases = {
        FilterOperator.EQ: ("eq", "en"), FilterOperator.NE: ("ne", "en"), FilterOperator.GT: ("gt", 3),
        FilterOperator.GTE: ("gte", 3), FilterOperator.LT: ("lt", 2.5), FilterOperator.LTE: ("lte", 2.5),
        FilterOperator.IN: ("in", ["a", "b"]), FilterOperator.NIN: ("nin", [1, 2]),
    }
    for op, (neutral_op, value) in cases.items():
        assert to_neutral_filter(MetadataFilters(filters=[_f("k", value, op)])) == Condition("k", neutral_op, value)


def test_filters_and_or_nested():
    filters = MetadataFilters(
        filters=[
            _f("lang", "en"),
            MetadataFilters(filters=[_f("year", 2020, FilterOperator.GT), _f("tag", ["x", "y"], FilterOperator.IN)],
                            condition=FilterCondition.OR),
        ],
        condition=FilterCondition.AND,
    )
    assert to_neutral_filter(filters) == AllOf((
        Condition("lang", "eq", "en"),
        AnyOf((Condition("year", "gt", 2020), Condition("tag", "in", ["x", "y"]))),
    ))
    assert to_neutral_filter(None) is None
    assert to_neutral_filter(MetadataFilters(filters=[])) is None


@pytest.mark.parametrize("op", [FilterOperator.ANY, FilterOperator.ALL, FilterOperator.CONTAINS,
                                FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE,
                                FilterOperator.IS_EMPTY])
def test_filters_unsupported_operator_is_an_error(op):
    value = ["a"] if op in (FilterOperator.ANY, FilterOperator.ALL) else "a"
    nested = MetadataFilters(filters=[_f("lang", "en"), MetadataFilters(filters=[_f("k", value, op)])])
    with pytest.raises(UnsupportedFilterError, match=op.name):
        to_neutral_filter(nested)


def test_filters_not_condition_and_bad_values_are_errors():
    with pytest.raises(UnsupportedFilterError, match="NOT"):
        to_neutral_filter(MetadataFilters(filters=[_f("a", 1)], condition=FilterCondition.NOT))
    with pytest.raises(UnsupportedFilterError, match="None"):
        to_neutral_filter(MetadataFilters(filters=[_f("a", None)]))
    with pytest.raises(UnsupportedFilterError, match="list"):
        to_neutral_filter(MetadataFilters(filters=[_f("a", "x", FilterOperator.IN)]))
    with pytest.raises(UnsupportedFilterError, match="IN / NIN"):
        to_neutral_filter(MetadataFilters(filters=[_f("a", ["x"], FilterOperator.EQ)]))
    with pytest.raises(TypeError, match="MetadataFilters"):
        to_neutral_filter({"a": 1})


# -------------------------------------------------------------------------------------------- alpha
def test_alpha_mapping():
    assert alpha_to_weights(None) == (0.4, 0.2, 0.4)
    for alpha, expected in [(1, (0.6, 0.0, 0.4)), (0.5, (0.3, 0.3, 0.4)), (0, (0.0, 0.6, 0.4)),
                            (2 / 3, (0.4, 0.2, 0.4))]:
        assert alpha_to_weights(alpha) == pytest.approx(expected)
    assert alpha_to_weights(0.25, (1.0, 1.0, 0.0)) == pytest.approx((0.5, 1.5, 0.0))
    for bad in (-0.1, 1.5, "x", True):
        with pytest.raises(ValueError, match="alpha"):
            alpha_to_weights(bad)
    with pytest.raises(ValueError, match="dense \\+ sparse"):
        alpha_to_weights(0.5, (0.0, 0.0, 1.0))


# ------------------------------------------------------------------------------------------- misc
def test_resolve_encoder_and_client_checks(encoder):
    assert resolve_encoder(encoder) is encoder
    assert resolve_encoder(M3Embedding(encoder=encoder)) is encoder
    with pytest.raises(ValueError, match="encoder is required"):
        resolve_encoder(None)
    with pytest.raises(TypeError, match="unsupported client"):
        adapter_for_client(object())
