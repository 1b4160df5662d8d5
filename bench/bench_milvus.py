"""Milvus adapter benchmark on milvus-lite with synthetic BGE-M3-shaped vectors (no model needed).

Measures ``upsert_documents`` throughput (through the public API, with a stand-in encoder that returns
random dense 1024-d, sparse ~50 nnz and ColBERT ``--tokens`` x 1024 vectors) and ``hybrid_search``
latency (p50 / p95) for: dense+sparse hybrid (weights 0.5/0.5/0, no ColBERT), and the default hybrid +
exact ColBERT re-score of the candidates (weights 0.4/0.2/0.4).

    python bench/bench_milvus.py --n 10000 --tokens 16 --db /tmp/bench_m3.db
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m3_integrations.encoder.types import M3Output  # noqa: E402


class SyntheticEncoder:
    """Stands in for M3Encoder: BGE-M3-shaped random outputs, deterministic per text."""

    def __init__(self, dim: int, tokens: int, nnz: int, vocab: int = 30000) -> None:
        self.dim, self.tokens, self.nnz, self.vocab = dim, tokens, nnz, vocab

    def _one(self, text: str, tokens: int, nnz: int, rng) -> tuple:
        dense = rng.standard_normal(self.dim).astype(np.float32)
        ids = rng.choice(self.vocab, size=nnz, replace=False)
        sparse = {int(i): float(w) for i, w in zip(ids, rng.uniform(0.01, 0.3, nnz), strict=True)}
        col = rng.standard_normal((tokens, self.dim)).astype(np.float32)
        return dense / np.linalg.norm(dense), sparse, col / np.linalg.norm(col, axis=1, keepdims=True)

    def _encode(self, texts, tokens, nnz) -> M3Output:
        rows = [self._one(t, tokens, nnz, np.random.default_rng(abs(hash(t)) % 2**32)) for t in texts]
        return M3Output(dense=np.stack([r[0] for r in rows]), sparse=[r[1] for r in rows], colbert=[r[2] for r in rows])

    def encode_documents(self, texts) -> M3Output:
        return self._encode(texts, self.tokens, self.nnz)

    def query(self, i: int) -> M3Output:
        return self._encode([f"query {i}"], 32, 10)


def pct(values, q):
    return float(np.percentile(np.asarray(values) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--tokens", type=int, default=16, help="ColBERT vectors per chunk")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--nnz", type=int, default=50)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--prefetch", type=int, default=100)
    ap.add_argument("--db", default="/tmp/bench_m3/m3.db")
    ap.add_argument("--keep", action="store_true", help="reuse an existing database (skip ingest if full)")
    args = ap.parse_args()

    import milvus_lite
    import pymilvus
    from pymilvus import MilvusClient

    from m3_integrations.milvus import count_documents, hybrid_search, upsert_documents

    db = Path(args.db)
    if not args.keep and db.parent.exists():
        shutil.rmtree(db.parent)
    db.parent.mkdir(parents=True, exist_ok=True)
    enc = SyntheticEncoder(args.dim, args.tokens, args.nnz)
    client = MilvusClient(str(db))
    result = {"pymilvus": pymilvus.__version__, "milvus_lite": getattr(milvus_lite, "__version__", "?"),
              "n": args.n, "tokens": args.tokens, "dim": args.dim, "nnz": args.nnz, "cpus": os.cpu_count()}
    have = count_documents(client, "bench") if args.keep and client.has_collection("bench") else 0
    if have < args.n:
        docs = ({"text": f"chunk {i}", "id": str(i)} for i in range(have, args.n))
        t0 = time.perf_counter()
        upsert_documents(client, docs, "bench", enc, batch_size=args.batch, show_progress=False)
        elapsed = time.perf_counter() - t0
        result["ingest_s"] = round(elapsed, 1)
        result["ingest_docs_per_s"] = round((args.n - have) / elapsed, 1)
    result["count"] = count_documents(client, "bench")
    for label, weights in (("hybrid", (0.5, 0.5, 0.0)), ("hybrid+colbert", (0.4, 0.2, 0.4))):
        times = []
        for i in range(args.queries + 3):
            q = enc.query(i)
            t0 = time.perf_counter()
            hits = hybrid_search(client, "", "bench", None, limit=10, weights=weights, prefetch_limit=args.prefetch,
                                 query_output=q)
            if i >= 3:
                times.append(time.perf_counter() - t0)
            assert len(hits) == 10
        result[label] = {"p50_ms": round(pct(times, 50), 1), "p95_ms": round(pct(times, 95), 1),
                         "mean_ms": round(statistics.fmean(times) * 1000, 1)}
    size = sum(f.stat().st_size for f in db.parent.rglob("*") if f.is_file())
    result["disk_mb"] = round(size / 2**20)
    client.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
