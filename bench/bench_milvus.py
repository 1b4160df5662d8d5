"""Milvus adapter benchmark on milvus-lite with synthetic BGE-M3-shaped vectors (no model needed).

Latency / ingest (through the public API, with a stand-in encoder that returns random dense 1024-d,
sparse ~50 nnz and ColBERT ``--tokens`` x 1024 rows per chunk; queries have ``--query-tokens`` rows):
``upsert_documents`` throughput, then ``hybrid_search`` p50 / p95 of the dense+sparse hybrid (weights
0.5/0.5/0, no ColBERT) and of the default hybrid + exact ColBERT re-score (0.4/0.2/0.4), with the time
of each Milvus call of a query (``--profile``: where the time goes).

    python bench/bench_milvus.py --n 10000 --tokens 256 --storage 4bit --db /tmp/bench_m3/m3.db
    python bench/bench_milvus.py --n 10000 --tokens 16 --db /tmp/bench_m3/m3.db          # the old 16-row case

Fidelity of the ColBERT storage settings (no database: the companion layout stores exactly
``_codecs.encode_rows`` and scores ``decode_rows``, tested in tests/test_milvus_colbert_storage.py):

    python bench/bench_milvus.py --fidelity --queries 200
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

    def __init__(self, dim: int, tokens: int, nnz: int, query_tokens: int = 32, vocab: int = 30000) -> None:
        self.dim, self.tokens, self.nnz, self.query_tokens, self.vocab = dim, tokens, nnz, query_tokens, vocab

    def _one(self, text: str, tokens: int, nnz: int, rng) -> tuple:
        dense = rng.standard_normal(self.dim, dtype=np.float32)
        ids = rng.choice(self.vocab, size=nnz, replace=False)
        sparse = {int(i): float(w) for i, w in zip(ids, rng.uniform(0.01, 0.3, nnz), strict=True)}
        col = rng.standard_normal((tokens, self.dim), dtype=np.float32)
        return dense / np.linalg.norm(dense), sparse, col / np.linalg.norm(col, axis=1, keepdims=True)

    def _encode(self, texts, tokens, nnz) -> M3Output:
        rows = [self._one(t, tokens, nnz, np.random.default_rng(abs(hash(t)) % 2**32)) for t in texts]
        return M3Output(dense=np.stack([r[0] for r in rows]), sparse=[r[1] for r in rows], colbert=[r[2] for r in rows])

    def encode_documents(self, texts) -> M3Output:
        return self._encode(texts, self.tokens, self.nnz)

    def query(self, i: int) -> M3Output:
        return self._encode([f"query {i}"], self.query_tokens, 10)


def pct(values, q):
    return float(np.percentile(np.asarray(values) * 1000, q))


class CallTimer:
    """Times each Milvus call of the client (instance attributes shadow the client's methods)."""

    METHODS = ("search", "hybrid_search", "query", "get")

    def __init__(self, client) -> None:
        self.client, self.calls = client, []
        for name in self.METHODS:
            setattr(client, name, self._wrap(name, getattr(client, name)))

    def _wrap(self, name, method):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                coll = args[0] if args else kwargs.get("collection_name", "")
                self.calls.append((f"{name} {'companion' if str(coll).endswith('__colbert') else 'main'}",
                                   time.perf_counter() - t0))
        return timed

    def restore(self) -> None:
        for name in self.METHODS:
            delattr(self.client, name)


def latency(args) -> dict:
    import milvus_lite
    import pymilvus
    from pymilvus import MilvusClient

    from m3_integrations.milvus import count_documents, hybrid_search, upsert_documents

    db = Path(args.db)
    if not args.keep and db.parent.exists():
        shutil.rmtree(db.parent)
    db.parent.mkdir(parents=True, exist_ok=True)
    enc = SyntheticEncoder(args.dim, args.tokens, args.nnz, args.query_tokens)
    client = MilvusClient(str(db))
    result = {"pymilvus": pymilvus.__version__, "milvus_lite": getattr(milvus_lite, "__version__", "?"),
              "n": args.n, "tokens": args.tokens, "query_tokens": args.query_tokens, "storage": args.storage,
              "pool_factor": args.pool_factor, "dim": args.dim, "nnz": args.nnz, "cpus": os.cpu_count(),
              "prefetch": args.prefetch, "rescore_limit": args.rescore_limit}
    have = count_documents(client, "bench") if args.keep and client.has_collection("bench") else 0
    if have < args.n:
        docs = ({"text": f"chunk {i}", "id": str(i)} for i in range(have, args.n))
        t0 = time.perf_counter()
        upsert_documents(client, docs, "bench", enc, batch_size=args.batch, show_progress=False,
                         colbert_storage=args.storage, colbert_pool_factor=args.pool_factor)
        elapsed = time.perf_counter() - t0
        result["ingest_s"] = round(elapsed, 1)
        result["ingest_docs_per_s"] = round((args.n - have) / elapsed, 1)
        result["ingest_colbert_rows_per_s"] = round((args.n - have) * args.tokens / elapsed)
    result["count"] = count_documents(client, "bench")
    kinds = [("hybrid", (0.5, 0.5, 0.0), None), ("hybrid+colbert", (0.4, 0.2, 0.4), None)]
    if args.rescore_limit:
        kinds.append((f"hybrid+colbert rescore_limit={args.rescore_limit}", (0.4, 0.2, 0.4), args.rescore_limit))
    for label, weights, rescore in kinds:
        times, timer = [], CallTimer(client) if args.profile else None
        for i in range(args.queries + 3):
            q = enc.query(i)
            if timer:
                timer.calls.clear()
            t0 = time.perf_counter()
            hits = hybrid_search(client, "", "bench", None, limit=10, weights=weights, prefetch_limit=args.prefetch,
                                 rescore_limit=rescore, query_output=q)
            if i >= 3:
                times.append(time.perf_counter() - t0)
                if timer:
                    for name, secs in timer.calls:
                        timer.__dict__.setdefault("sum", {}).setdefault(name, []).append(secs)
            assert len(hits) == 10
        result[label] = {"p50_ms": round(pct(times, 50), 1), "p95_ms": round(pct(times, 95), 1),
                         "mean_ms": round(statistics.fmean(times) * 1000, 1)}
        if timer:
            per_query = {k: round(sum(v) / args.queries * 1000, 1) for k, v in timer.__dict__.get("sum", {}).items()}
            result[label]["mean_ms_per_call_kind"] = per_query
            timer.restore()
    size = sum(f.stat().st_size for f in db.parent.rglob("*") if f.is_file())
    result["disk_mb"] = round(size / 2**20)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    client.close()
    return result


# ------------------------------------------------------------------------------------------ fidelity
def structured_corpus(n_docs: int, tokens: int, dim: int, vocab: int, rng) -> tuple[np.ndarray, list[np.ndarray]]:
    """Token embeddings with structure: each row is a vocabulary vector (Zipf-like choice) plus a context
    component, so documents repeat near-identical rows (what pooling merges) and queries that share a
    document's tokens score high on it (MaxSim spreads over ~0.2-0.9, not ~0.1 as for i.i.d. rows)."""
    table = rng.standard_normal((vocab, dim), dtype=np.float32)
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, vocab + 1) ** 0.9
    weights /= weights.sum()
    docs = []
    for _ in range(n_docs):
        topic = rng.standard_normal(dim, dtype=np.float32) / np.sqrt(dim)
        ids = rng.choice(vocab, size=tokens, p=weights)
        rows = table[ids] + 0.6 * topic + 0.35 * rng.standard_normal((tokens, dim), dtype=np.float32) / np.sqrt(dim)
        docs.append(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    return table, docs


def fidelity(args) -> dict:
    from m3_integrations.encoder.pooling import pool_colbert
    from m3_integrations.milvus._codecs import decode_rows, encode_rows, row_nbytes
    from m3_integrations.milvus._colbert import maxsim_sums

    rng = np.random.default_rng(args.seed)
    _, docs = structured_corpus(args.fidelity_docs, args.tokens, args.dim, 4000, rng)
    queries, cands, dense_sparse = [], [], []
    for _ in range(args.queries):
        target = int(rng.integers(len(docs)))
        picked = rng.choice(len(docs[target]), size=args.query_tokens // 2, replace=False)
        own = docs[target][picked]
        other = docs[int(rng.integers(len(docs)))][rng.choice(args.tokens, args.query_tokens - len(own))]
        q = np.concatenate([own, other]) + 0.5 * rng.standard_normal((args.query_tokens, args.dim),
                                                                        dtype=np.float32) / np.sqrt(args.dim)
        queries.append(q / np.linalg.norm(q, axis=1, keepdims=True))
        c = np.unique(np.concatenate([[target], rng.choice(len(docs), args.candidates, replace=False)]))
        cands.append(c)
        # dense and sparse scores of the candidates: the same for every setting (only ColBERT changes)
        dense_sparse.append(0.4 * rng.normal(0.55, 0.08, len(c)) + 0.2 * rng.exponential(0.1, len(c)))
    t0 = time.perf_counter()
    pooled = {f: pool_colbert(docs, f) for f in args.fidelity_pool_factors if f > 1}
    pool_s = time.perf_counter() - t0

    def scores(matrices):
        return [maxsim_sums(q, [matrices[j] for j in c]) / len(q) for q, c in zip(queries, cands, strict=True)]

    exact = scores(docs)
    rows = []
    for factor in args.fidelity_pool_factors:
        base = docs if factor == 1 else pooled[factor]
        n_rows = sum(len(m) for m in base)
        for storage in args.fidelity_storages:
            stored = [decode_rows(encode_rows(m, storage), storage, args.dim) for m in base]
            got = scores(stored)
            err = np.concatenate([g - e for g, e in zip(got, exact, strict=True)])
            overlaps = []
            for g, e, ds in zip(got, exact, dense_sparse, strict=True):
                top_exact = set(np.argsort(-(ds + 0.4 * e), kind="stable")[:10])
                top_got = set(np.argsort(-(ds + 0.4 * g), kind="stable")[:10])
                overlaps.append(len(top_exact & top_got) / 10)
            rows.append({"storage": storage, "pool_factor": factor,
                         "bytes_per_row": row_nbytes(storage, args.dim) * n_rows / (len(docs) * args.tokens),
                         "mean_abs_err": float(np.abs(err).mean()), "max_abs_err": float(np.abs(err).max()),
                         "mean_err": float(err.mean()), "top10_overlap": float(np.mean(overlaps)),
                         "min_top10_overlap": float(np.min(overlaps))})
            print(json.dumps(rows[-1]), flush=True)
    return {"queries": args.queries, "candidates_per_query": args.candidates + 1, "docs": args.fidelity_docs,
            "tokens": args.tokens, "query_tokens": args.query_tokens, "dim": args.dim,
            "exact_score_mean": float(np.mean(np.concatenate(exact))),
            "exact_score_range": [float(np.min(np.concatenate(exact))), float(np.max(np.concatenate(exact)))],
            "pooling_s": round(pool_s, 1), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--tokens", type=int, default=256, help="ColBERT rows per chunk")
    ap.add_argument("--query-tokens", type=int, default=32, help="ColBERT rows per query")
    ap.add_argument("--storage", default=None, help="colbert_storage (float32, float16, 8bit, 4bit)")
    ap.add_argument("--pool-factor", type=int, default=None, help="colbert_pool_factor (1 = off)")
    ap.add_argument("--rescore-limit", type=int, default=None, help="also time hybrid+colbert with this rescore_limit")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--nnz", type=int, default=50)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--prefetch", type=int, default=100)
    ap.add_argument("--profile", action="store_true", help="time each Milvus call of a query")
    ap.add_argument("--db", default="/tmp/bench_m3/m3.db")
    ap.add_argument("--keep", action="store_true", help="reuse an existing database (skip ingest if full)")
    ap.add_argument("--fidelity", action="store_true", help="ColBERT score error of each storage x pool factor")
    ap.add_argument("--fidelity-docs", type=int, default=1000)
    ap.add_argument("--candidates", type=int, default=49, help="fidelity: random candidates per query (+ target)")
    ap.add_argument("--fidelity-storages", nargs="+", default=["float32", "float16", "8bit", "4bit"])
    ap.add_argument("--fidelity-pool-factors", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(json.dumps(fidelity(args) if args.fidelity else latency(args)))


if __name__ == "__main__":
    main()
