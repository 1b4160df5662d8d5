"""ColBERT storage x token pooling on Qdrant Edge, at realistic chunk lengths: disk, memory, speed, fidelity.

For each setting (``--storages`` x ``--pool-factors``) a fresh process ingests ``--docs`` synthetic chunks of
``--doc-tokens`` ColBERT rows (default 256; queries ``--query-tokens`` = 32 rows) through ``upsert_documents``
(precomputed vectors, no model), then measures:

- disk: ``du`` of the store after the ingest returned (WAL included), bytes per stored token;
- peak RSS of that process (ingest and queries), ingest rate in ColBERT rows/s (rows given to the engine);
- p50 of the default weighted hybrid (dense + sparse candidates, ColBERT re-score), of the same with
  ``rescore_limit=50``, and of the ColBERT re-rank alone (``mode="colbert"``);
- fidelity against exact float32, unpooled MaxSim computed in numpy from the original rows: mean / max absolute
  error of the ColBERT score (reference scale) over every returned hit, and top-10 overlap of the weighted hybrid
  ranking with the exact ranking of the same candidates.

    python bench/bench_colbert_storage.py --docs 10000                       # every setting
    python bench/bench_colbert_storage.py --docs 10000 --storages 4bit --pool-factors 1 2
    python bench/bench_colbert_storage.py --docs 2000 --doc-tokens 32 --query-tokens 16   # the old toy case

Synthetic rows are independent random unit vectors: the worst case for pooling (a trained model's neighbouring
tokens are similar; see bench/colbert_fidelity.py for real encoder outputs).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_qdrant import SyntheticEncoder, synthetic_doc, synthetic_query  # noqa: E402

from m3_integrations import weighted_score  # noqa: E402
from m3_integrations.qdrant import QdrantEdgeStore, QdrantSchema, hybrid_search, upsert_documents  # noqa: E402


def du_bytes(path: Path) -> int:
    """Bytes allocated on disk (``du``: the engine's preallocated files are sparse)."""
    done = subprocess.run(["du", "-s", "-B1", str(path)], check=True, capture_output=True, text=True)
    return int(done.stdout.split()[0])


def p50(samples: list[float]) -> float:
    return round(float(np.percentile(np.asarray(samples) * 1000, 50)), 2)


def exact_scores(q, doc_index: int, args) -> dict[str, float]:
    dense, sparse, colbert = synthetic_doc(doc_index, args.doc_tokens, args.nnz)
    return {"dense": float(q.dense[0] @ dense),
            "sparse": float(sum(w * sparse.get(t, 0.0) for t, w in q.sparse[0].items())),
            "colbert": float((q.colbert[0] @ colbert.T).max(axis=1).mean())}


def one(storage: str, pool: int, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="bench_colbert_", dir=args.workdir))
    store = QdrantEdgeStore(workdir / "m3", optimize_after=10**12)
    schema = QdrantSchema(colbert_storage=storage, colbert_pool_factor=pool)
    encoder = SyntheticEncoder(args.doc_tokens, args.nnz)
    docs = ({"text": f"chunk {i}", "id": str(i)} for i in range(args.docs))
    t = time.perf_counter()
    upsert_documents(store, docs, "bench", encoder, batch_size=args.batch_size, show_progress=False, schema=schema)
    ingest_s = time.perf_counter() - t
    store.optimize("bench")
    store.close()  # the optimizer's replaced segments leave the disk when the shard closes
    disk = du_bytes(workdir / "m3")
    store = QdrantEdgeStore(workdir / "m3", optimize_after=10**12)
    rows_written = args.docs * (args.doc_tokens if pool == 1 else max(args.doc_tokens // pool, 1))
    result = {"storage": storage, "pool_factor": pool, "docs": args.docs, "doc_tokens": args.doc_tokens,
              "query_tokens": args.query_tokens, "ingest_s": round(ingest_s, 1),
              "colbert_rows_per_s": round(rows_written / ingest_s), "disk_mib": round(disk / 2**20, 1),
              "bytes_per_token": round(disk / (args.docs * args.doc_tokens), 1)}
    queries = [synthetic_query(args.docs, s, args.query_tokens, args.doc_tokens, args.nnz)
               for s in range(args.queries)]
    kinds = {"hybrid_weighted": {}, "colbert_rerank": {"mode": "colbert"},
             **{f"hybrid_weighted_rescore{k}": {"rescore_limit": k} for k in args.rescore_limits}}
    for kw in kinds.values():  # one untimed pass maps the pages the kind reads
        for q in queries[: min(20, len(queries))]:
            hybrid_search(store, "", "bench", None, limit=10, query_output=q, schema=schema, **kw)
    times = {k: [] for k in kinds}
    errors, overlaps = [], []
    for q in queries:
        for label, kw in kinds.items():
            t = time.perf_counter()
            hits = hybrid_search(store, "", "bench", None, limit=10, query_output=q, schema=schema, **kw)
            times[label].append(time.perf_counter() - t)
            if label == "hybrid_weighted":
                exact = {h.id: exact_scores(q, int(h.id), args) for h in hits}
                errors += [abs(h.scores["colbert"] - exact[h.id]["colbert"]) for h in hits]
                candidates = {h.id for h in hybrid_search(store, "", "bench", None, limit=args.prefetch * 2,
                                                          query_output=q, schema=schema, mode="dense",
                                                          prefetch_limit=args.prefetch)}
                candidates |= {h.id for h in hybrid_search(store, "", "bench", None, limit=args.prefetch,
                                                           query_output=q, schema=schema, mode="sparse")}
                fused = {d: weighted_score(**exact_scores(q, int(d), args)) for d in candidates}
                best = sorted(fused, key=lambda d: -fused[d])[:10]
                overlaps.append(len(set(best) & {h.id for h in hits}) / 10)
    result.update({f"{k}_p50_ms": p50(v) for k, v in times.items()})
    result.update(colbert_abs_error_mean=round(float(np.mean(errors)), 5),
                  colbert_abs_error_max=round(float(np.max(errors)), 5),
                  top10_overlap=round(float(np.mean(overlaps)), 3),
                  peak_rss_gib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2))
    store.close()
    subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--doc-tokens", type=int, default=256, help="ColBERT rows per chunk")
    ap.add_argument("--query-tokens", type=int, default=32, help="ColBERT rows per query")
    ap.add_argument("--nnz", type=int, default=50)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--prefetch", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rescore-limits", type=int, nargs="*", default=[50, 20])
    ap.add_argument("--storages", nargs="+", default=["float32", "float16", "8bit", "4bit"])
    ap.add_argument("--pool-factors", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", default=None, help="append each result as a JSON line to this file")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # "storage,pool": run in this process
    args = ap.parse_args()
    if args.one:
        storage, pool = args.one.split(",")
        print(json.dumps(one(storage, int(pool), args)), flush=True)
        return
    print(f"# {args.docs} chunks x {args.doc_tokens} ColBERT rows, queries of {args.query_tokens} rows, "
          f"{args.queries} queries; one process per setting", flush=True)
    for storage in args.storages:
        for pool in args.pool_factors:
            cmd = [sys.executable, __file__, "--one", f"{storage},{pool}"]
            for flag in ("docs", "doc_tokens", "query_tokens", "nnz", "queries", "prefetch", "batch_size"):
                cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            cmd += ["--rescore-limits", *map(str, args.rescore_limits)]
            if args.workdir:
                cmd += ["--workdir", args.workdir]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{storage} pool {pool}: failed\n{done.stderr[-2000:]}", flush=True)
                continue
            line = done.stdout.strip().splitlines()[-1]
            print(line, flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    main()
