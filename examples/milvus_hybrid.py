"""BGE-M3 hybrid search in Milvus: dense + sparse + ColBERT, with milvus-lite (one local file) by default.

    python examples/milvus_hybrid.py                                     # BAAI/bge-m3, ./milvus_hybrid.db
    python examples/milvus_hybrid.py --model /path/to/bge-m3 --uri /tmp/m3.db
    python examples/milvus_hybrid.py --uri http://localhost:19530         # a Milvus server (docker/compose.yaml)
"""

from __future__ import annotations

import argparse

from pymilvus import MilvusClient

from m3_integrations import M3Encoder
from m3_integrations.milvus import (
    AllOf,
    Condition,
    count_documents,
    delete_by_filter,
    get_documents,
    hybrid_search,
    upsert_documents,
)

DOCS = [
    {"id": "sourdough", "text": "Sourdough bread rises slowly with a starter of wild yeast and lactic bacteria.",
     "metadata": {"topic": "food", "year": 2021}},
    {"id": "espresso", "text": "A double espresso uses 18 grams of finely ground coffee and takes about 28 seconds.",
     "metadata": {"topic": "food", "year": 2023}},
    {"id": "volcano", "text": "Shield volcanoes erupt runny basalt lava; stratovolcanoes can explode violently.",
     "metadata": {"topic": "nature", "year": 2019}},
    {"id": "tides", "text": "Tides are the rise and fall of the sea caused by the pull of the Moon and the Sun.",
     "metadata": {"topic": "nature", "year": 2022}},
    {"id": "milvus", "text": "Milvus merges dense and sparse search results with a weighted or an RRF ranker.",
     "metadata": {"topic": "database", "year": 2024}},
    {"id": "colbert", "text": "ColBERT compares every query token with every document token and sums the maxima.",
     "metadata": {"topic": "database", "year": 2020}},
]


def show(title: str, hits) -> None:
    """Print hits with their fused score and per-mode scores."""
    print(title)
    for rank, hit in enumerate(hits, start=1):
        modes = " ".join(f"{mode}={value:.4f}" for mode, value in hit.scores.items())
        print(f"  {rank}. [{hit.id}] score={hit.score:.4f} {modes} | {hit.text[:70]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="BAAI/bge-m3", help="hub id or local BGE-M3 directory")
    parser.add_argument("--device", default=None, help="cpu, cuda... (default: CUDA when available)")
    parser.add_argument("--uri", default="./milvus_hybrid.db",
                        help="milvus-lite file (default ./milvus_hybrid.db) or a server URL")
    parser.add_argument("--collection", default="hybrid_demo")
    parser.add_argument("--query", default="how long does an espresso shot take")
    parser.add_argument("-k", type=int, default=3)
    args = parser.parse_args(argv)

    encoder = M3Encoder(args.model, device=args.device)
    client = MilvusClient(args.uri)
    try:
        upsert_documents(client, DOCS, collection_name=args.collection, encoder=encoder)
        print(f"stored {count_documents(client, args.collection)} documents in {args.uri}")
        query = encoder.encode_queries([args.query])  # encode once, search several ways
        for fusion, weights in (("weighted", (0.4, 0.2, 0.4)), ("weighted", (1.0, 0.3, 0.0)), ("rrf", (1, 1, 1))):
            hits = hybrid_search(client, args.query, collection_name=args.collection, encoder=encoder,
                                 limit=args.k, fusion=fusion, weights=weights, query_output=query)
            show(f"\nhybrid {fusion} {weights}: {args.query!r}", hits)
        recent_food = AllOf((Condition("topic", "eq", "food"), Condition("year", "gte", 2022)))
        show("\nfood from 2022 on (neutral filter):", hybrid_search(
            client, args.query, collection_name=args.collection, encoder=encoder, limit=args.k,
            query_filter=recent_food, query_output=query))
        show("\nnature (a Milvus boolean expression works too):", hybrid_search(
            client, "the sea and the moon", collection_name=args.collection, encoder=encoder, limit=args.k,
            query_filter='metadata["topic"] == "nature"'))
        delete_by_filter(client, Condition("topic", "eq", "database"), collection_name=args.collection)
        left = sorted(d.id for d in get_documents(client, args.collection))
        print(f"\nafter deleting topic=database: {count_documents(client, args.collection)} left: {', '.join(left)}")
    finally:
        client.close()


if __name__ == "__main__":
    main()
