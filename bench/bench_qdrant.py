"""Qdrant adapter benchmark: ingest throughput and query latency on synthetic BGE-M3-shaped vectors.

No model is needed: a synthetic encoder returns random unit dense vectors (1024-d), ~50-nnz sparse vectors
over the XLM-R vocabulary (250,002 ids, Zipf-like ids) and ``--doc-tokens`` x 1024 ColBERT rows per chunk.
Queries are noisy copies of stored chunks (so dense/sparse/ColBERT agree on a neighbourhood, as real ones do).

    python bench/bench_qdrant.py --engine edge --sizes 10000 100000
    python bench/bench_qdrant.py --engine local --sizes 10000 --time-cap 600
    python bench/bench_qdrant.py --sizes 100000 --store /tmp/m3bench   # re-run: resumes, then queries

Ingest goes through ``upsert_documents`` (encode-ahead thread, batches); latency through ``hybrid_search``
with a precomputed ``query_output`` (so no encoder time), p50/p95 over ``--queries`` queries. The first pass
over the queries (which maps their candidates' vectors into memory) is timed on its own; each kind then
runs one untimed pass, and the timed pass interleaves the kinds query by query: warm timings, as in a
long-running service, that machine-speed drift during the run affects equally.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m3_integrations.encoder.types import M3Output  # noqa: E402
from m3_integrations.qdrant import (  # noqa: E402
    QdrantEdgeStore,
    count_documents,
    hybrid_search,
    upsert_documents,
)
from m3_integrations.qdrant.documents import backend_for  # noqa: E402

DIM = 1024
VOCAB = 250002


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _sparse_ids(rng: np.random.Generator, nnz: int) -> np.ndarray:
    ids = np.unique((rng.zipf(1.2, size=nnz * 2) * 7919) % (VOCAB - 4) + 4)
    return ids[:nnz]


def synthetic_doc(index: int, doc_tokens: int, nnz: int) -> tuple[np.ndarray, dict[int, float], np.ndarray]:
    """Deterministic vectors of chunk ``index``."""
    rng = np.random.default_rng(index)
    dense = _unit(rng.standard_normal(DIM, dtype=np.float32))
    ids = _sparse_ids(rng, nnz)
    sparse = dict(zip(ids.tolist(), rng.uniform(0.01, 0.35, len(ids)).astype(np.float32).tolist(), strict=True))
    colbert = _unit(rng.standard_normal((doc_tokens, DIM), dtype=np.float32))
    return dense, sparse, colbert


class SyntheticEncoder:
    """Stands in for ``M3Encoder``: texts are ``"chunk <i>"``; vectors come from ``synthetic_doc(i)``."""

    dim = DIM

    def __init__(self, doc_tokens: int, nnz: int) -> None:
        self.doc_tokens, self.nnz = doc_tokens, nnz

    def encode_documents(self, texts: list[str]) -> M3Output:
        rows = [synthetic_doc(int(t.split()[1]), self.doc_tokens, self.nnz) for t in texts]
        return M3Output(dense=np.stack([r[0] for r in rows]), sparse=[r[1] for r in rows],
                        colbert=[r[2] for r in rows])


def synthetic_query(n_docs: int, seed: int, query_tokens: int, doc_tokens: int, nnz: int) -> M3Output:
    """A noisy copy of a random stored chunk."""
    rng = np.random.default_rng(10_000_000 + seed)
    dense, sparse, colbert = synthetic_doc(int(rng.integers(n_docs)), doc_tokens, nnz)
    q_dense = _unit(dense + 0.05 * rng.standard_normal(DIM, dtype=np.float32))
    keep = list(sparse)[: max(1, nnz // 5)] + _sparse_ids(rng, 5).tolist()
    q_sparse = {t: float(sparse.get(t, 0.2)) for t in keep}
    rows = colbert[rng.integers(doc_tokens, size=query_tokens)]
    q_colbert = _unit(rows + 0.05 * rng.standard_normal(rows.shape, dtype=np.float32))
    return M3Output(dense=q_dense[None], sparse=[q_sparse], colbert=[q_colbert])


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "n": len(samples)}


QUERY_KINDS = {
    "dense": dict(mode="dense"),
    "sparse": dict(mode="sparse"),
    "colbert_rerank": dict(mode="colbert"),
    "hybrid_weighted": dict(mode="hybrid", fusion="weighted", rescore_limit="all"),
    "hybrid_rrf": dict(mode="hybrid", fusion="rrf"),
    "hybrid_dbsf": dict(mode="hybrid", fusion="dbsf"),
}


def bench_queries(client, name, n_docs, args, deadline) -> dict:
    out = {}
    queries = [synthetic_query(n_docs, s, args.query_tokens, args.doc_tokens, args.nnz) for s in range(args.queries)]
    backend = backend_for(client)
    from m3_integrations._query import make_plan
    from m3_integrations.qdrant._plans import build_request
    from m3_integrations.qdrant._schema import DEFAULT_SCHEMA

    kinds = [(label, kw, args.prefetch) for label, kw in QUERY_KINDS.items()]
    kinds += [(f"{label}_p{args.small_prefetch}", QUERY_KINDS[label], args.small_prefetch)
              for label in ("colbert_rerank", "hybrid_weighted")]
    kinds += [(f"hybrid_weighted_rescore{k}", dict(QUERY_KINDS["hybrid_weighted"], rescore_limit=k), args.prefetch)
              for k in args.rescore_limits]
    full_rescore: list[list[str]] = []  # top-10 of the default weighted hybrid, per query
    cold = []
    for q in queries:  # first touch of each query's candidates (memory-mapped vectors), timed apart
        if time.monotonic() > deadline:
            break
        t = time.perf_counter()
        hits = hybrid_search(client, "", name, None, limit=10, prefetch_limit=args.prefetch, query_output=q)
        cold.append(time.perf_counter() - t)
        full_rescore.append([h.id for h in hits])
    if cold:
        out["hybrid_weighted_first_touch"] = {"hybrid_search": percentiles(cold)}
        print(f"  hybrid_weighted, first touch of the candidates: {out['hybrid_weighted_first_touch']}", flush=True)
    # one untimed pass per kind maps the pages it reads (this host reclaims page cache left idle for a few
    # seconds; a busy service keeps its hot pages); then the kinds take turns query by query, so that the
    # machine's speed drifting over the run weighs on every kind alike
    timings = {label: ([], [], []) for label, _, _ in kinds}
    for _, kw, prefetch in kinds:
        for q in queries:
            if time.monotonic() > deadline:
                break
            hybrid_search(client, "", name, None, limit=10, prefetch_limit=prefetch, query_output=q, **kw)
    for i, q in enumerate(queries):
        if time.monotonic() > deadline:
            break
        for label, kw, prefetch in kinds:
            full, single, overlap = timings[label]
            t = time.perf_counter()
            hits = hybrid_search(client, "", name, None, limit=10, prefetch_limit=prefetch, query_output=q, **kw)
            full.append(time.perf_counter() - t)
            if i < len(full_rescore):
                overlap.append(len({h.id for h in hits} & set(full_rescore[i])) / 10)
            request = build_request(make_plan(limit=10, prefetch_limit=prefetch, **kw), q, DEFAULT_SCHEMA, None)
            t = time.perf_counter()
            backend.query(name, request.stage)
            single.append(time.perf_counter() - t)
    for label, kw, _ in kinds:
        full, single, overlap = timings[label]
        if full:
            out[label] = {"hybrid_search": percentiles(full), "without_score_lookup": percentiles(single)}
            if "rescore_limit" in kw:
                out[label]["top10_overlap_with_full_rescore"] = round(float(np.mean(overlap)), 3)
            print(f"  {label:16s} hybrid_search {out[label]['hybrid_search']}  without score look-up "
                  f"{out[label]['without_score_lookup']}", flush=True)
    return out


def run(engine: str, n_docs: int, args) -> dict:
    start = time.monotonic()
    deadline = start + args.time_cap
    keep = engine == "edge" and args.store is not None
    workdir = Path(args.store) / str(n_docs) if keep else Path(tempfile.mkdtemp(prefix="bench_qdrant_",
                                                                                 dir=args.workdir))
    if engine == "edge":
        client = QdrantEdgeStore(workdir / "m3", optimize_after=10**12)  # optimize once, timed below
    else:
        from qdrant_client import QdrantClient

        client = QdrantClient(":memory:")
    name = "bench"
    encoder = SyntheticEncoder(args.doc_tokens, args.nnz)
    result: dict = {"engine": engine, "target_docs": n_docs, "doc_tokens": args.doc_tokens,
                    "query_tokens": args.query_tokens, "prefetch_limit": args.prefetch}
    have = count_documents(client, name) if keep and client.exists(name) else 0
    stored = have

    def docs():
        nonlocal stored
        for i in range(have, n_docs):  # a kept store resumes where the last run stopped
            if time.monotonic() > deadline - args.query_reserve:
                print(f"  ingest stopped by the time cap at {i} docs", flush=True)
                return
            stored = i + 1
            yield {"text": f"chunk {i}", "id": str(i), "metadata": {"shard": i % 16}}

    ingested = False
    if have < n_docs:
        t = time.perf_counter()
        upsert_documents(client, docs(), name, encoder, batch_size=args.batch_size, show_progress=False)
        ingest_s = time.perf_counter() - t
        ingested = True
        result.update(docs=stored, ingested_now=stored - have, ingest_s=round(ingest_s, 1),
                      ingest_docs_per_s=round((stored - have) / ingest_s, 1))
        print(f"[{engine} {n_docs}] ingested {stored - have} in {ingest_s:.1f}s = "
              f"{(stored - have) / ingest_s:.0f} docs/s ({stored} stored)", flush=True)
    else:
        result.update(docs=stored)
        print(f"[{engine} {n_docs}] reusing {stored} stored docs", flush=True)
    if engine == "edge" and (ingested or args.optimize):
        # unoptimized (appendable segments, brute force) latency, then optimize
        q = synthetic_query(stored, 0, args.query_tokens, args.doc_tokens, args.nnz)
        samples = []
        for _ in range(5):
            t = time.perf_counter()
            hybrid_search(client, "", name, None, prefetch_limit=args.prefetch, query_output=q)
            samples.append(time.perf_counter() - t)
        result["hybrid_weighted_before_optimize"] = percentiles(samples)
        t = time.perf_counter()
        client.optimize(name)
        result["optimize_s"] = round(time.perf_counter() - t, 1)
        print(f"  before optimize: hybrid {result['hybrid_weighted_before_optimize']}; optimize took "
              f"{result['optimize_s']}s", flush=True)
    result["queries"] = bench_queries(client, name, stored, args, deadline)
    result["max_rss_gib"] = round(rss_gib(), 2)
    result["wall_s"] = round(time.monotonic() - start, 1)
    if engine == "edge":
        result["disk_gib"] = round(sum(f.stat().st_size for f in workdir.rglob("*") if f.is_file()) / 2**30, 2)
        client.close()
    else:
        client.close()
    del client
    gc.collect()
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["edge", "local"], nargs="+", default=["edge"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--doc-tokens", type=int, default=32, help="ColBERT rows per chunk")
    parser.add_argument("--query-tokens", type=int, default=16, help="ColBERT rows per query")
    parser.add_argument("--nnz", type=int, default=50, help="sparse non-zeros per chunk")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--small-prefetch", type=int, default=25, help="also time ColBERT paths at this prefetch")
    parser.add_argument("--rescore-limits", type=int, nargs="*", default=[50, 25],
                        help="also time weighted hybrid with ColBERT re-scoring only this many candidates")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--time-cap", type=float, default=600, help="seconds per (engine, size) run")
    parser.add_argument("--query-reserve", type=float, default=120, help="seconds of the cap kept for queries")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--store", default=None,
                        help="keep the Edge store under STORE/<size> and reuse/resume it on the next run")
    parser.add_argument("--optimize", action="store_true", help="optimize a reused store before querying")
    parser.add_argument("--json", default=None, help="append results as JSON lines to this file")
    args = parser.parse_args(argv)
    print(f"cpus={os.cpu_count()} load={os.getloadavg()}", flush=True)
    for engine in args.engine:
        for n in args.sizes:
            result = run(engine, n, args)
            print(json.dumps(result), flush=True)
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
