"""Paired A/B of ``hybrid_search`` on Qdrant Edge: another checkout of this package (A) against this one (B).

Both run in one process on the same shard of a store kept by ``bench_qdrant.py --store``; for every query and
kind the order is A, B, B, A, and the result is the median of the per-query differences (B - A), which this
machine's speed drift (a third over minutes) does not bias.

    git worktree add /tmp/m3_baseline <commit>
    python bench/ab_qdrant.py --baseline /tmp/m3_baseline --store /tmp/m3bench --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_qdrant import synthetic_query  # noqa: E402

import m3_integrations.qdrant as current  # noqa: E402

KINDS = {"colbert_rerank": dict(mode="colbert"), "hybrid_weighted": {}, "rescore25": dict(rescore_limit=25),
         "rescore50": dict(rescore_limit=50), "dense": dict(mode="dense")}


def load_baseline(path: Path):
    """The baseline checkout's package, imported as ``m3_baseline``."""
    spec = importlib.util.spec_from_file_location("m3_baseline", path / "m3_integrations" / "__init__.py",
                                                  submodule_search_locations=[str(path / "m3_integrations")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["m3_baseline"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("m3_baseline.qdrant"), importlib.import_module("m3_baseline.encoder.types")


def run(baseline: tuple, store: Path, n: int, queries: int) -> dict:
    old, old_types = baseline
    new_store = current.QdrantEdgeStore(store / str(n) / "m3")
    shard = new_store._shard("bench")
    old_store = old.QdrantEdgeStore(store / str(n) / "m3")
    old_store._shards["bench"] = shard  # one shard: a path opens once
    qs = [synthetic_query(n, s, 16, 32, 50) for s in range(queries)]
    qs_old = [old_types.M3Output(dense=q.dense, sparse=q.sparse, colbert=q.colbert) for q in qs]
    diffs = {k: [] for k in KINDS}
    a_times = {k: [] for k in KINDS}
    b_times = {k: [] for k in KINDS}

    def timed(f) -> float:
        start = time.perf_counter()
        f()
        return time.perf_counter() - start

    for warm in (True, False):
        for qa, qb in zip(qs_old, qs, strict=True):
            for kind, kw in KINDS.items():
                def a(qa=qa, kw=kw):
                    return old.hybrid_search(old_store, "", "bench", None, limit=10, query_output=qa, **kw)

                def b(qb=qb, kw=kw):
                    return current.hybrid_search(new_store, "", "bench", None, limit=10, query_output=qb, **kw)

                a1, b1, b2, a2 = timed(a), timed(b), timed(b), timed(a)
                if not warm:
                    diffs[kind].append((b1 + b2 - a1 - a2) / 2)
                    a_times[kind].append((a1 + a2) / 2)
                    b_times[kind].append((b1 + b2) / 2)
    return {kind: {"baseline_p50_ms": round(float(np.median(a_times[kind])) * 1000, 2),
                   "current_p50_ms": round(float(np.median(b_times[kind])) * 1000, 2),
                   "paired_diff_p50_ms": round(float(np.median(diffs[kind])) * 1000, 2)} for kind in KINDS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout of this repository")
    parser.add_argument("--store", type=Path, default=Path("/tmp/m3bench"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args(argv)
    baseline = load_baseline(args.baseline)
    for n in args.sizes:
        for kind, row in run(baseline, args.store, n, args.queries).items():
            print(f"{n:>7} {kind:16s} baseline {row['baseline_p50_ms']:6.2f} ms  this {row['current_p50_ms']:6.2f} ms"
                  f"  paired difference {row['paired_diff_p50_ms']:+6.2f} ms", flush=True)


if __name__ == "__main__":
    main()
