"""Qdrant Edge's ColBERT scoring options and ingest paths, A/B in one process (engine-level, no adapter).

Query side: one shard holds the same chunks under several ColBERT vector names, one per storage / quantization
config (``--configs``); for every query the re-scoring of the same ``--candidates`` ids (the dense top
candidates) runs under each config and each scoring mode, interleaved, and the medians are reported with
how well the approximate scores pick the exact top ones (recall of the exact top-``k`` in the approximate
top-``n``).

Ingest side (``--ingest``): where the time of one upsert batch goes (``tolist``, ``Point`` construction, the
engine's ``update``), whether the engine releases the GIL during ``update`` (a second thread counts how far
it gets meanwhile), and a two-thread pipeline (convert batch i+1 while the engine stores batch i).

    python bench/ab_colbert_engine.py --docs 2000 --queries 100
    python bench/ab_colbert_engine.py --ingest --docs 1024
    python bench/ab_colbert_engine.py --ingest-package --docs 1024
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_qdrant import DIM, synthetic_doc, synthetic_query  # noqa: E402


def e():
    import qdrant_edge

    return qdrant_edge


def quant(name: str):
    q = e()
    if name == "none":
        return None
    if name == "bin":
        return q.BinaryQuantizationConfig(memory=q.Memory.Cold)
    if name == "bin_q8":
        return q.BinaryQuantizationConfig(memory=q.Memory.Cold,
                                          query_encoding=q.BinaryQuantizationQueryEncoding.Scalar8Bits)
    if name == "bin_q4":
        return q.BinaryQuantizationConfig(memory=q.Memory.Cold,
                                          query_encoding=q.BinaryQuantizationQueryEncoding.Scalar4Bits)
    if name == "bin2":
        return q.BinaryQuantizationConfig(memory=q.Memory.Cold, encoding=q.BinaryQuantizationEncoding.TwoBits)
    if name.startswith("tq"):
        bits = {"tq1": q.TurboQuantBitSize.Bits1, "tq2": q.TurboQuantBitSize.Bits2,
                "tq4": q.TurboQuantBitSize.Bits4}[name]
        return q.TurboQuantQuantizationConfig(memory=q.Memory.Cold, bits=bits)
    if name == "sq8":
        return q.ScalarQuantizationConfig(type=q.ScalarType.Int8, memory=q.Memory.Cold)
    raise ValueError(name)


def colbert_params(storage: str, quantization: str):
    q = e()
    datatype = {"f16": q.VectorStorageDatatype.Float16, "t4": q.VectorStorageDatatype.Turbo4,
                "t8": q.VectorStorageDatatype.Turbo8}[storage]
    return q.EdgeVectorParams(size=DIM, distance=q.Distance.Cosine,
                              multivector_config=q.MultiVectorConfig(comparator=q.MultiVectorComparator.MaxSim),
                              datatype=datatype, memory=q.Memory.Cold, quantization_config=quant(quantization),
                              hnsw_config=q.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10000))


def build(path: Path, configs: list[str], args) -> tuple:
    q = e()
    vectors = {"dense": q.EdgeVectorParams(size=DIM, distance=q.Distance.Cosine)}
    for c in configs:
        storage, quantization = c.split("+")
        vectors[c] = colbert_params(storage, quantization)
    shard = q.EdgeShard.create(str(path), q.EdgeConfig(vectors=vectors, wal_enabled=False))
    t = time.perf_counter()
    for start in range(0, args.docs, 64):
        points = []
        for i in range(start, min(start + 64, args.docs)):
            dense, _, colbert = synthetic_doc(i, args.doc_tokens, 50)
            rows = colbert.tolist()
            points.append(q.Point(id=i, vector={"dense": dense.tolist(), **{c: rows for c in configs}}))
        shard.update(q.UpdateOperation.upsert_points(points))
        shard.flush()
    print(f"# ingest {args.docs} x {args.doc_tokens} rows x {len(configs)} vectors: "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    shard.optimize()
    print(f"# optimize {time.perf_counter() - t:.1f} s; segments {shard.info().segments_count}", flush=True)
    return shard


PARAMS = {
    "exact": lambda q: q.SearchParams(quantization=q.QuantizationSearchParams(ignore=True)),
    "approx": lambda q: q.SearchParams(quantization=q.QuantizationSearchParams(rescore=False)),
    "default": lambda q: None,
}


def score(shard, using: str, qrows: list, ids: list[int], mode: str, limit: int | None = None):
    q = e()
    req = q.QueryRequest(query=q.Query.Nearest(qrows, using=using), limit=limit or len(ids),
                         filter=q.Filter(must=[q.HasIdCondition(set(ids))]), params=PARAMS[mode](q),
                         with_payload=False, with_vector=False)
    return [(p.id, p.score) for p in shard.query(req)]


def queries_ab(args) -> dict:
    q = e()
    work = Path(tempfile.mkdtemp(prefix="ab_colbert_", dir=args.workdir))
    shard = build(work / "shard", args.configs, args)
    qs = [synthetic_query(args.docs, s, args.query_tokens, args.doc_tokens, 50) for s in range(args.queries)]
    # cases: (label, vector name, mode, candidates)
    cases = []
    for c in args.configs:
        quantized = not c.endswith("+none")
        cases.append((f"{c} exact {args.candidates}", c, "exact", args.candidates))
        if quantized:
            cases.append((f"{c} approx {args.candidates}", c, "approx", args.candidates))
            cases.append((f"{c} approx {args.wide}", c, "approx", args.wide))
    for n in args.exact_sizes:
        cases.append((f"{args.configs[0]} exact {n}", args.configs[0], "exact", n))
    times = {label: [] for label, *_ in cases}
    recall = {label: {m: [] for m in args.pick} for label, _, mode, n in cases
              if mode == "approx" and n == args.candidates}
    corr = {label: [] for label in recall}
    fit = {label: [] for label in recall}  # (slope, intercept) of approx = a * exact + b, per query
    for warm in (True, False):
        for qo in qs:
            rows = qo.colbert[0].tolist()
            cand = [p.id for p in shard.query(q.QueryRequest(query=q.Query.Nearest(qo.dense[0].tolist(),
                                                                                   using="dense"),
                                                             limit=args.wide, with_payload=False))]
            exact_ref = None
            for label, using, mode, n in cases:
                ids = cand[:n]
                t = time.perf_counter()
                res = score(shard, using, rows, ids, mode)
                dt = time.perf_counter() - t
                if warm:
                    continue
                times[label].append(dt)
                if mode == "exact" and n == args.candidates and using == args.configs[0]:
                    exact_ref = dict(res)
                if mode == "approx" and n == args.candidates and exact_ref is not None:
                    approx = dict(res)
                    common = [i for i in cand[:args.candidates] if i in approx and i in exact_ref]
                    xs = np.array([exact_ref[i] for i in common])
                    ys = np.array([approx[i] for i in common])
                    corr[label].append(float(np.corrcoef(xs, ys)[0, 1]))
                    fit[label].append(np.polyfit(xs, ys, 1).tolist())
                    exact_top = sorted(common, key=lambda i: -exact_ref[i])[: args.top]
                    order = sorted(approx, key=lambda i: -approx[i])
                    for m in args.pick:
                        recall[label][m].append(len(set(exact_top) & set(order[:m])) / len(exact_top))
    out = {}
    for label in times:
        row = {"p50_ms": round(float(np.median(times[label])) * 1000, 2)}
        if label in recall:
            row["corr_with_exact"] = round(float(np.mean(corr[label])), 3) if corr[label] else None
            if fit[label]:
                slope, intercept = np.median(np.array(fit[label]), axis=0)
                row["approx_vs_exact_slope"] = round(float(slope), 3)
                row["approx_vs_exact_intercept"] = round(float(intercept), 3)
            row.update({f"recall_top{args.top}_in_{m}": round(float(np.mean(v)), 3)
                        for m, v in recall[label].items() if v})
        out[label] = row
        print(f"{label:28s} {json.dumps(row)}", flush=True)
    shard.close()
    return out


def ingest_ab(args) -> dict:
    q = e()
    docs = [synthetic_doc(i, args.doc_tokens, 50) for i in range(args.docs)]
    batch = 64

    def new_shard(name: str):
        vectors = {"dense": q.EdgeVectorParams(size=DIM, distance=q.Distance.Cosine),
                   "colbert": colbert_params("t4", "none")}
        return q.EdgeShard.create(str(Path(tempfile.mkdtemp(dir=args.workdir)) / name),
                                  q.EdgeConfig(vectors=vectors, wal_enabled=False))

    def convert(start: int) -> tuple[list, float, float]:
        t0 = time.perf_counter()
        lists = [(d.tolist(), c.tolist()) for d, _, c in docs[start:start + batch]]
        t1 = time.perf_counter()
        points = [q.Point(id=start + k, vector={"dense": dv, "colbert": cv}) for k, (dv, cv) in enumerate(lists)]
        return points, t1 - t0, time.perf_counter() - t1

    out = {}
    for rep in range(args.reps):
        # serial, with the time split
        shard = new_shard(f"serial{rep}")
        split = {"tolist": 0.0, "point": 0.0, "update": 0.0, "flush": 0.0}
        t = time.perf_counter()
        for start in range(0, args.docs, batch):
            points, a, b = convert(start)
            split["tolist"] += a
            split["point"] += b
            t1 = time.perf_counter()
            shard.update(q.UpdateOperation.upsert_points(points))
            t2 = time.perf_counter()
            shard.flush()
            split["update"] += t2 - t1
            split["flush"] += time.perf_counter() - t2
        serial = time.perf_counter() - t
        shard.close()
        # GIL probe: a Python loop counts while the engine updates
        shard = new_shard(f"gil{rep}")
        points, _, _ = convert(0)
        counter = [0]
        stop = threading.Event()

        def spin(counter=counter, stop=stop):
            while not stop.is_set():
                counter[0] += 1

        t0 = time.perf_counter()
        n0 = 0
        while time.perf_counter() - t0 < 0.2:
            n0 += 1
        thread = threading.Thread(target=spin)
        thread.start()
        t1 = time.perf_counter()
        shard.update(q.UpdateOperation.upsert_points(points))
        upd = time.perf_counter() - t1
        stop.set()
        thread.join()
        spins_per_s_alone = n0 / 0.2
        gil_share = counter[0] / (spins_per_s_alone * upd)
        shard.close()
        # pipelined: the engine stores batch i in a worker thread while this thread converts batch i+1
        shard = new_shard(f"pipe{rep}")
        t = time.perf_counter()
        pending = None
        for start in range(0, args.docs, batch):
            points, _, _ = convert(start)
            if pending is not None:
                pending.join()

            def store(points=points, shard=shard):
                shard.update(q.UpdateOperation.upsert_points(points))
                shard.flush()

            pending = threading.Thread(target=store)
            pending.start()
        pending.join()
        pipe = time.perf_counter() - t
        shard.close()
        rows = args.docs * args.doc_tokens
        row = {"serial_rows_per_s": round(rows / serial), "pipelined_rows_per_s": round(rows / pipe),
               "split_s": {k: round(v, 2) for k, v in split.items()},
               "python_progress_during_update": round(gil_share, 2)}
        print(json.dumps(row), flush=True)
        out[f"rep{rep}"] = row
    return out


def ingest_package(args) -> dict:
    """``upsert_documents`` into Qdrant Edge: this version's conversion (memoryviews of float32 rows) vs the
    previous one (``tolist()``), interleaved run by run."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench_qdrant import SyntheticEncoder

    from m3_integrations.qdrant import QdrantEdgeStore, edge, upsert_documents

    current = edge._points

    def tolist_points(e, rows, schema):  # the conversion before this version
        return [e.Point(id=pid, payload=payload, vector={
            schema.dense: np.asarray(dense, dtype=np.float32).tolist(),
            schema.sparse: e.SparseVector(indices=indices, values=values),
            schema.colbert: np.asarray(colbert, dtype=np.float32).tolist()})
            for pid, dense, (indices, values), colbert, payload in rows]

    settings = {"tolist (previous)": tolist_points, "memoryview (this version)": current}
    rates: dict[str, list[float]] = {k: [] for k in settings}
    encoder = SyntheticEncoder(args.doc_tokens, 50)
    for _ in range(args.reps):
        for label, points in settings.items():  # interleaved: drift weighs on every setting alike
            edge._points = points
            store = QdrantEdgeStore(Path(tempfile.mkdtemp(dir=args.workdir)) / "m3", optimize_after=10**12)
            docs = ({"text": f"chunk {i}", "id": str(i)} for i in range(args.docs))
            t = time.perf_counter()
            upsert_documents(store, docs, "bench", encoder, batch_size=64, show_progress=False)
            rates[label].append(args.docs * args.doc_tokens / (time.perf_counter() - t))
            store.drop("bench")
            store.close()
    edge._points = current
    out = {k: {"median_rows_per_s": round(float(np.median(v))), "runs": [round(x) for x in v]}
           for k, v in rates.items()}
    for k, v in out.items():
        print(f"{k:26s} {json.dumps(v)}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--doc-tokens", type=int, default=256)
    ap.add_argument("--query-tokens", type=int, default=32)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--wide", type=int, default=200)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--pick", type=int, nargs="+", default=[10, 12, 15, 20])
    ap.add_argument("--exact-sizes", type=int, nargs="*", default=[10, 15, 20])
    ap.add_argument("--configs", nargs="+", default=["t4+none", "t4+bin", "t4+bin_q8", "t4+tq1", "t4+tq2"])
    ap.add_argument("--ingest", action="store_true")
    ap.add_argument("--ingest-package", action="store_true",
                    help="upsert_documents: memoryview rows (this version) vs tolist() (the previous one)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    result = ingest_package(args) if args.ingest_package else ingest_ab(args) if args.ingest else queries_ab(args)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "result": result}, indent=1))


if __name__ == "__main__":
    main()
