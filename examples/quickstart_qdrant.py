"""Quickstart: BGE-M3 dense + sparse + ColBERT in Qdrant, fused inside the database.

By default everything is embedded (Qdrant Edge in a local folder, no server). ``--url`` runs the very
same code against a Qdrant server.

    python examples/quickstart_qdrant.py                                  # BAAI/bge-m3, embedded store
    python examples/quickstart_qdrant.py --model /path/to/bge-m3 --path ./qdrant-data
    python examples/quickstart_qdrant.py --url http://localhost:6333      # a Qdrant server (docker/compose.yaml)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from m3_integrations import M3Encoder, weighted_score
from m3_integrations.qdrant import (
    Condition,
    QdrantEdgeStore,
    count_documents,
    delete_documents,
    hybrid_search,
    upsert_documents,
)

DOCS = [
    {"id": "bge-m3", "text": "BGE-M3 gives dense, sparse and multi-vector (ColBERT) representations of a text "
                             "from one forward pass, in more than 100 languages.", "metadata": {"topic": "model"}},
    {"id": "qdrant", "text": "Qdrant stores named dense vectors, sparse vectors and multivectors, and fuses them "
                             "on the server with its Query API.", "metadata": {"topic": "database"}},
    {"id": "milvus", "text": "Milvus keeps dense and sparse vectors in one collection and merges them with a "
                             "weighted or a reciprocal rank fusion ranker.", "metadata": {"topic": "database"}},
    {"id": "tides", "text": "Tides are the rise and fall of the sea caused by the pull of the Moon and the Sun.",
     "metadata": {"topic": "nature"}},
    {"id": "espresso", "text": "A double espresso uses 18 grams of finely ground coffee and takes about 28 seconds.",
     "metadata": {"topic": "food"}},
    {"id": "fox", "text": "The quick brown fox jumps over the lazy dog near the river bank.",
     "metadata": {"topic": "nature"}},
]


def show(title: str, hits) -> None:
    """Print hits with their fused score and the per-mode scores that made it."""
    print(title)
    for rank, hit in enumerate(hits, start=1):
        modes = " ".join(f"{mode}={value:.4f}" for mode, value in hit.scores.items())
        print(f"  {rank}. [{hit.id}] score={hit.score:.4f} {modes} | {hit.text[:70]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="BAAI/bge-m3", help="hub id or local BGE-M3 directory")
    parser.add_argument("--device", default=None, help="cpu, cuda... (default: CUDA when available)")
    parser.add_argument("--path", default=None, help="Qdrant Edge directory (default: a temporary one)")
    parser.add_argument("--url", default=None, help="a Qdrant server instead, e.g. http://localhost:6333")
    parser.add_argument("--collection", default="quickstart")
    parser.add_argument("--query", default="Which database fuses dense and sparse vectors on the server?")
    parser.add_argument("-k", type=int, default=3)
    args = parser.parse_args(argv)

    encoder = M3Encoder(args.model, device=args.device)
    print(f"encoder: {encoder!r}, dim {encoder.dim}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.url:
            from qdrant_client import QdrantClient

            client = QdrantClient(url=args.url)
        else:
            client = QdrantEdgeStore(Path(args.path or tmp))
        try:
            # One forward pass per document gives all three vectors; ids are deterministic (re-running adds nothing).
            keys = upsert_documents(client, DOCS, collection_name=args.collection, encoder=encoder)
            print(f"stored {len(keys)} documents in {client!r}; count = {count_documents(client, args.collection)}")

            # The reference BGE-M3 score, 0.4 dense + 0.2 sparse + 0.4 ColBERT, computed inside Qdrant.
            hits = hybrid_search(client, args.query, collection_name=args.collection, encoder=encoder, limit=args.k)
            show(f"\nhybrid (weighted 0.4/0.2/0.4): {args.query!r}", hits)
            for hit in hits:  # per-mode scores are on the reference scale, so the fused score can be checked
                d, s, c = hit.scores["dense"], hit.scores["sparse"], hit.scores["colbert"]
                assert abs(hit.score - weighted_score(d, s, c, (0.4, 0.2, 0.4))) < 2e-3

            show("\nhybrid (reciprocal rank fusion):", hybrid_search(
                client, args.query, collection_name=args.collection, encoder=encoder, limit=args.k, fusion="rrf"))
            show("\nsparse only (lexical):", hybrid_search(
                client, args.query, collection_name=args.collection, encoder=encoder, limit=args.k, mode="sparse"))
            show("\nhybrid, only topic=nature:", hybrid_search(
                client, "animals by the river", collection_name=args.collection, encoder=encoder, limit=args.k,
                query_filter=Condition("topic", "eq", "nature")))

            delete_documents(client, ["fox"], collection_name=args.collection)
            print(f"\nafter deleting 'fox': count = {count_documents(client, args.collection)}")
        finally:
            client.close()


if __name__ == "__main__":
    main()
