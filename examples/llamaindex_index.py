"""LlamaIndex + BGE-M3: index documents with dense, sparse and ColBERT vectors, then query them.

Runs offline with a local model directory:

    python examples/llamaindex_index.py --model /path/to/bge-m3               # Qdrant in memory
    python examples/llamaindex_index.py --model DIR --db ./m3_edge             # embedded Qdrant Edge, persisted
    python examples/llamaindex_index.py --model DIR --backend milvus --db ./m3.db   # milvus-lite file

With ``--db`` a second run reopens the stored collection instead of indexing again. The answer is
written by LlamaIndex's ``MockLLM`` (it echoes the prompt) unless you set ``Settings.llm`` yourself.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SAMPLE = [
    ("bge-m3", "BGE-M3 gives dense, sparse and multi-vector (ColBERT) representations of a text from one "
               "forward pass of an XLM-RoBERTa model.", {"topic": "models", "year": 2024}),
    ("hybrid", "Hybrid retrieval combines lexical matching with semantic similarity for better recall.",
     {"topic": "search", "year": 2023}),
    ("qdrant", "Qdrant stores named dense vectors, native sparse vectors and MAX_SIM multivectors, and fuses "
               "them with its Query API.", {"topic": "databases", "year": 2024}),
    ("milvus", "Milvus keeps dense and sparse vector fields in one collection and ranks them with "
               "hybrid_search.", {"topic": "databases", "year": 2022}),
    ("fox", "The quick brown fox jumps over the lazy dog near the river bank.", {"topic": "animals", "year": 2020}),
]


def open_store(args, encoder):
    from m3_integrations.llama_index import M3MilvusVectorStore, M3QdrantVectorStore

    if args.backend == "milvus":
        from pymilvus import MilvusClient

        client = MilvusClient(args.db or "./m3_llamaindex.db")
        return M3MilvusVectorStore(client=client, collection_name=args.collection, encoder=encoder)
    if args.db:
        from m3_integrations.qdrant import QdrantEdgeStore

        client = QdrantEdgeStore(args.db)
    else:
        from qdrant_client import QdrantClient

        client = QdrantClient(":memory:")
    return M3QdrantVectorStore(client=client, collection_name=args.collection, encoder=encoder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="BAAI/bge-m3", help="BGE-M3 hub id or local directory")
    parser.add_argument("--backend", choices=["qdrant", "milvus"], default="qdrant")
    parser.add_argument("--db", help="Qdrant Edge directory / milvus-lite file (default: Qdrant in memory)")
    parser.add_argument("--collection", default="llamaindex_demo")
    parser.add_argument("--query", default="How does hybrid search combine lexical and semantic matching?")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)

    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

    from m3_integrations import M3Encoder
    from m3_integrations.llama_index import SCORES_KEY, M3Embedding

    encoder = M3Encoder(args.model)
    embed_model = M3Embedding(encoder=encoder)  # the same encoder as the store: one forward pass per text
    store = open_store(args, encoder)

    stored = store.count() if store.collection_exists() else 0
    start = time.perf_counter()
    if stored:
        index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
        print(f"reopened collection {args.collection!r}: {stored} nodes, nothing re-indexed")
    else:
        docs = [Document(text=text, id_=doc_id, metadata=meta) for doc_id, text, meta in SAMPLE]
        index = VectorStoreIndex.from_documents(
            docs, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed_model)
        print(f"indexed {store.count()} nodes in {time.perf_counter() - start:.2f}s with "
              f"{encoder.stats.forward_passes} forward pass(es) (dense, sparse and ColBERT stored per node)")

    for mode in ("default", "sparse", "hybrid"):
        retriever = index.as_retriever(vector_store_query_mode=mode, similarity_top_k=args.top_k)
        print(f"\n[{mode}] {args.query}")
        for hit in retriever.retrieve(args.query):
            per_mode = ", ".join(f"{k}={v:.3f}" for k, v in hit.node.metadata[SCORES_KEY].items())
            print(f"  {hit.score:8.4f}  {hit.node.ref_doc_id:<8} ({per_mode})  {hit.node.get_content()[:60]}")

    databases = MetadataFilters(filters=[MetadataFilter(key="topic", value="databases"),
                                         MetadataFilter(key="year", value=2023, operator=FilterOperator.GTE)])
    filtered = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=args.top_k,
                                  filters=databases).retrieve("vector database")
    print(f"\n[hybrid, topic == databases and year >= 2023] {[h.node.ref_doc_id for h in filtered]}")

    engine = index.as_query_engine(llm=MockLLM(max_tokens=40), vector_store_query_mode="hybrid",
                                   similarity_top_k=2)
    response = engine.query(args.query)
    print(f"\n[query engine] sources: {[n.node.ref_doc_id for n in response.source_nodes]}")
    close = getattr(store.client, "close", None)
    if args.db and close is not None:
        close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
