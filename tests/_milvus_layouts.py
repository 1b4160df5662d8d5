"""Milvus collections made the way users make them outside this package, for the tests that read and write them."""

from __future__ import annotations

from typing import Any

TUTORIAL_TEXTS = [
    "Artificial intelligence was founded as an academic discipline in 1956.",
    "Alan Turing was the first person to conduct substantial research in AI.",
    "Born in Maida Vale, London, Turing was raised in southern England.",
    "Milvus stores dense and sparse vectors for hybrid search.",
    "The quick brown fox jumps over the lazy dog.",
    "BGE-M3 gives dense, sparse and multi-vector representations.",
]
"""The texts of the tests on collections made the way Milvus' BGE-M3 tutorial makes them."""


def make_tutorial_collection(client: Any, name: str, dim: int, *, pk: Any = None, auto_id: bool = True,
                             text_max: int = 512, metric: str = "IP", extra: tuple = (),
                             dynamic: bool = False) -> None:
    """A collection in the layout of Milvus' BGE-M3 hybrid-search tutorial: a primary key ``pk``, ``text``,
    ``sparse_vector`` (inverted index, IP) and ``dense_vector`` (``metric``), plus ``extra`` fields given as
    ``(name, DataType, kwargs)``. The tutorial's key is an auto-id VARCHAR; milvus-lite 3 auto-generates INT64 keys
    only, so ``pk`` defaults to INT64."""
    from pymilvus import DataType

    pk = DataType.INT64 if pk is None else pk
    schema = client.create_schema(auto_id=auto_id, enable_dynamic_field=dynamic)
    schema.add_field("pk", pk, is_primary=True, **({"max_length": 100} if pk == DataType.VARCHAR else {}))
    schema.add_field("text", DataType.VARCHAR, max_length=text_max)
    for field_name, kind, kwargs in extra:
        schema.add_field(field_name, kind, **kwargs)
    schema.add_field("sparse_vector", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("dense_vector", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index("sparse_vector", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    index.add_index("dense_vector", index_type="AUTOINDEX", metric_type=metric)
    client.create_collection(name, schema=schema, index_params=index)
