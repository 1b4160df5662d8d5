"""ColBERT storage x token pooling on Qdrant Edge, at realistic chunk lengths: disk, memory, speed, fidelity.

For each setting (``--storages`` x ``--pool-factors``) a fresh process ingests ``--docs`` synthetic chunks of
``--doc-tokens`` ColBERT rows (default 256; queries ``--query-tokens`` = 32 rows) through ``upsert_documents``
(precomputed vectors, no model), then measures:

- disk: ``du`` of the store after the ingest returned (WAL included), bytes per stored token;
- peak RSS of that process (ingest and queries), ingest rate in ColBERT rows/s (rows given to the engine);
- p50 of the default weighted hybrid (dense + sparse candidates, the best 15 re-scored by ColBERT), of the same
  re-scoring every candidate (``rescore_limit="all"``) or ``--rescore-limits``, and of the ColBERT re-rank alone
  (``mode="colbert"``: every candidate);
- fidelity against exact float32, unpooled MaxSim: mean / max absolute error of the ColBERT score (reference
  scale) of every ``rescore_limit="all"`` hit, computed in numpy from the original rows; top-10 overlap of each
  weighted hybrid kind with the ``float32``, unpooled, ``"all"`` run (the first one, always run: exact MaxSim
  over the same candidates).

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
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_qdrant import SyntheticEncoder, synthetic_doc, synthetic_query  # noqa: E402

from m3_integrations import _query  # noqa: E402
from m3_integrations.qdrant import QdrantEdgeStore, QdrantSchema, edge, hybrid_search, upsert_documents  # noqa: E402


def du_bytes(path: Path) -> int:
    """Bytes allocated on disk (``du``: the engine's preallocated files are sparse)."""
    done = subprocess.run(["du", "-s", "-B1", str(path)], check=True, capture_output=True, text=True)
    return int(done.stdout.split()[0])


class MemorySampler:
    """Peak anonymous and file-backed resident memory of this process (/proc/self/status, every 0.1 s).

    Peak RSS (``ru_maxrss``) counts both: the engine writes ColBERT rows through memory-mapped files, whose
    pages stay resident (and reclaimable) after they are written; anonymous memory is what the process holds.
    """

    def __init__(self) -> None:
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for line in Path("/proc/self/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(value.split()[0]) * 1024)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {"peak_anon_gib": round(self.peak["RssAnon"] / 2**30, 2),
                "peak_file_rss_gib": round(self.peak["RssFile"] / 2**30, 2)}


def p50(samples: list[float]) -> float:
    return round(float(np.percentile(np.asarray(samples) * 1000, 50)), 2)


def exact_colbert(q, doc_index: int, args) -> float:
    """Exact float32, unpooled ColBERT score (MaxSim / query length) of a stored chunk."""
    colbert = synthetic_doc(doc_index, args.doc_tokens, args.nnz)[2]
    return float((q.colbert[0] @ colbert.T).max(axis=1).mean())


def one(storage: str, pool: int, index: str, args) -> dict:
    edge.COLBERT_INDEX = None if index == "none" else index
    if args.keep_store:  # a store kept from an earlier run of the same setting: measure its queries again
        workdir = Path(args.keep_store) / f"{storage}_pool{pool}_{index}_{args.docs}x{args.doc_tokens}"
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="bench_colbert_", dir=args.workdir))
    memory = MemorySampler()
    schema = QdrantSchema(colbert_storage=storage, colbert_pool_factor=pool)
    ingest_file = workdir / "ingest.json"
    if ingest_file.exists():
        ingest_s = json.loads(ingest_file.read_text())["ingest_s"]
    else:  # a kept store without its ingest record is a killed run's: started over, so the rate is the whole ingest's
        subprocess.run(["rm", "-rf", str(workdir / "m3")], check=True)
        store = QdrantEdgeStore(workdir / "m3", optimize_after=10**12)
        encoder = SyntheticEncoder(args.doc_tokens, args.nnz)
        docs = ({"text": f"chunk {i}", "id": str(i)} for i in range(args.docs))
        t = time.perf_counter()
        upsert_documents(store, docs, "bench", encoder, batch_size=args.batch_size, show_progress=False,
                         schema=schema)
        ingest_s = time.perf_counter() - t
        store.optimize("bench")
        store.close()  # the optimizer's replaced segments leave the disk when the shard closes
        if args.keep_store:
            ingest_file.write_text(json.dumps({"ingest_s": ingest_s}))
    disk = du_bytes(workdir / "m3")
    store = QdrantEdgeStore(workdir / "m3", optimize_after=10**12)
    rows_written = args.docs * (args.doc_tokens if pool == 1 else max(args.doc_tokens // pool, 1))
    result = {"storage": storage, "pool_factor": pool, "colbert_index": index, "docs": args.docs,
              "doc_tokens": args.doc_tokens, "query_tokens": args.query_tokens, "ingest_s": round(ingest_s, 1),
              "colbert_rows_per_s": round(rows_written / ingest_s), "disk_mib": round(disk / 2**20, 1),
              "bytes_per_token": round(disk / (args.docs * args.doc_tokens), 1)}
    queries = [synthetic_query(args.docs, s, args.query_tokens, args.doc_tokens, args.nnz)
               for s in range(args.queries)]
    indexed = store.colbert_estimates("bench", schema.colbert) is not None
    kinds = {"hybrid_weighted": {}, "hybrid_weighted_all": {"rescore_limit": "all"},
             "colbert_rerank": {"mode": "colbert"},
             **{f"hybrid_weighted_rescore{k}": {"rescore_limit": k} for k in args.rescore_limits}}
    if indexed:  # on the same store: the best K by dense + sparse scored exactly (the index ignored), margins
        kinds["hybrid_weighted_best50_exact"] = {"_no_index": True}
        kinds.update({f"hybrid_weighted_best{k}_exact": {"_no_index": True, "rescore_limit": k}
                      for k in args.exact_limits})
        kinds.update({f"hybrid_weighted_margin{m}": {"_margin": m} for m in args.margins})

    def run(q, kw):
        kw = dict(kw)
        no_index, margin = kw.pop("_no_index", False), kw.pop("_margin", None)
        if no_index:
            store.colbert_estimates = lambda *a: None  # the instance attribute hides the method
        if margin is not None:
            _query.SHORTLIST_MARGIN, saved = margin, _query.SHORTLIST_MARGIN
        try:
            return hybrid_search(store, "", "bench", None, limit=10, query_output=q, schema=schema, **kw)
        finally:
            if no_index:
                del store.colbert_estimates
            if margin is not None:
                _query.SHORTLIST_MARGIN = saved

    for kw in kinds.values():  # one untimed pass maps the pages the kind reads
        for q in queries[: min(20, len(queries))]:
            run(q, kw)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    top10: dict[str, list[list[str]]] = {k: [] for k in kinds}
    colbert: list[tuple[int, str, float]] = []
    for n, q in enumerate(queries):  # the kinds take turns query by query: load drift weighs on all alike
        for label, kw in kinds.items():
            t = time.perf_counter()
            hits = run(q, kw)
            times[label].append(time.perf_counter() - t)
            top10[label].append([h.id for h in hits])
            if label == "hybrid_weighted_all":
                colbert += [(n, h.id, h.scores["colbert"]) for h in hits]
    result.update({f"{k}_p50_ms": p50(v) for k, v in times.items()})
    result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    result.update(memory.stop())
    errors = [abs(score - exact_colbert(queries[n], int(doc), args)) for n, doc, score in colbert]
    result.update(colbert_abs_error_mean=round(float(np.mean(errors)), 5),
                  colbert_abs_error_max=round(float(np.max(errors)), 5))
    for label in kinds:  # what the shortlist / rescore_limit cost on this store: overlap with its own "all" run
        if label.startswith("hybrid_weighted") and label != "hybrid_weighted_all":
            overlap = [len(set(a) & set(b)) / 10 for a, b in zip(top10[label], top10["hybrid_weighted_all"],
                                                                 strict=True)]
            result[f"{label}_top10_vs_all_same_store"] = round(float(np.mean(overlap)), 3)
    if args.baseline:  # top-10 overlap with exact float32 unpooled MaxSim over all candidates
        exact = json.loads(Path(args.baseline).read_text())
        for label in kinds:
            if label != "colbert_rerank":
                overlap = [len(set(a) & set(b)) / 10 for a, b in zip(top10[label], exact, strict=True)]
                result[f"{label}_top10_overlap"] = round(float(np.mean(overlap)), 3)
    if args.write_baseline:
        Path(args.write_baseline).write_text(json.dumps(top10["hybrid_weighted_all"]))
    store.close()
    if not args.keep_store:
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
    ap.add_argument("--rescore-limits", type=int, nargs="*", default=[],
                    help="besides the default (15 at limit 10) and 'all' (with an index: the candidates estimated)")
    ap.add_argument("--storages", nargs="+", default=["float32", "float16", "8bit", "4bit"])
    ap.add_argument("--pool-factors", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--indexes", nargs="+", default=["binary"],
                    help="quantized ColBERT index of the collection ('none': the layout before it)")
    ap.add_argument("--exact-limits", type=int, nargs="*", default=[],
                    help="also time the best K by dense + sparse scored exactly, index ignored (with an index)")
    ap.add_argument("--margins", type=int, nargs="*", default=[],
                    help="also time shortlists of limit + these margins (collections with an index)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep-store", default=None,
                    help="keep each setting's store under this folder; a later run with the same settings "
                         "measures its queries again without ingesting")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the exact float32 run (no top-10 overlap: latency, disk and memory only)")
    ap.add_argument("--json", default=None, help="append each result as a JSON line to this file")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # "storage,pool": run in this process
    ap.add_argument("--baseline", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--write-baseline", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        storage, pool, index = args.one.split(",")
        print(json.dumps(one(storage, int(pool), index, args)), flush=True)
        return
    print(f"# {args.docs} chunks x {args.doc_tokens} ColBERT rows, queries of {args.query_tokens} rows, "
          f"{args.queries} queries; one process per setting", flush=True)
    baseline = Path(tempfile.mkdtemp()) / "exact_top10.json"
    settings = [("float32", 1, "none")] + [(s, p, i) for s in args.storages for p in args.pool_factors
                                           for i in args.indexes if (s, p, i) != ("float32", 1, "none")]
    if args.no_reference:
        settings = settings[1:]
    for n, (storage, pool, index) in enumerate(settings):
        cmd = [sys.executable, __file__, "--one", f"{storage},{pool},{index}"]
        for flag in ("docs", "doc_tokens", "query_tokens", "nnz", "queries", "prefetch", "batch_size"):
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        cmd += ["--rescore-limits", *map(str, args.rescore_limits), "--margins", *map(str, args.margins),
                "--exact-limits", *map(str, args.exact_limits)]
        if not args.no_reference:
            cmd += ["--write-baseline" if n == 0 else "--baseline", str(baseline)]
        if args.workdir:
            cmd += ["--workdir", args.workdir]
        if args.keep_store:
            cmd += ["--keep-store", args.keep_store]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{storage} pool {pool}: failed\n{done.stderr[-2000:]}", flush=True)
            if n == 0 and not args.no_reference:
                return
            continue
        line = done.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
