"""What ColBERT storage and token pooling cost in fidelity, on your model and your texts.

Encodes the passages of ``--texts`` (one per line, or a .jsonl with a ``text`` field) as documents and
``--queries`` (same format; default: the first words of sampled passages) as queries with the model of
``--model``, once. Then, for every ``--storages`` x ``--pool-factors`` setting, stores the precomputed outputs in
a fresh Qdrant Edge collection (the real engine: its quantized scoring, not a simulation) and compares with
exact float32, unpooled scores computed here:

- mean / max absolute error of the ColBERT score of every returned hit (reference scale: MaxSim / query length);
- top-10 overlap of the default weighted hybrid (0.4 dense + 0.2 sparse + 0.4 ColBERT) with the exact
  weighted ranking of the whole corpus, the same for ``rescore_limit="all"`` (every candidate scored exactly),
  and the overlap of the two (what the default's shortlist costs on the same store).

    python bench/colbert_fidelity.py --model BAAI/bge-m3 --texts passages.txt --queries queries.txt
    python bench/colbert_fidelity.py --random-model 4 --texts stdlib      # no weights: random full-width model

``--texts stdlib`` uses the docstrings of Python's standard library as passages (always available offline).
Random weights do not have a trained model's geometry (neighbouring tokens of a trained model are similar,
which pooling relies on): run this on the real model before choosing a pool factor.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m3_integrations import M3Encoder, M3Output, weighted_score  # noqa: E402
from m3_integrations.encoder.pooling import pooled_length  # noqa: E402
from m3_integrations.qdrant import QdrantEdgeStore, QdrantSchema, edge, hybrid_search, upsert_documents  # noqa: E402


def stdlib_passages(limit: int, words: int = 220) -> list[str]:
    """Passages of about ``words`` words from the docstrings of the standard library's modules (read from the
    source files, nothing imported)."""
    import ast
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    passages: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if len(passages) >= limit:
            break
        if {"test", "tests", "site-packages", "idlelib"} & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
        tokens = " ".join(ast.get_docstring(n) or "" for n in nodes).split()
        for start in range(0, len(tokens) - words // 2, words):
            passages.append(" ".join(tokens[start:start + words]))
    return passages[:limit]


def read_texts(spec: str, limit: int) -> list[str]:
    if spec == "stdlib":
        return stdlib_passages(limit)
    path = Path(spec)
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        lines = [json.loads(line)["text"] for line in lines]
    return lines[:limit]


class Precomputed:
    """An encoder that returns outputs computed beforehand (texts are ``"<index>"``)."""

    def __init__(self, output: M3Output) -> None:
        self.output, self.dim = output, output.dense.shape[1]

    def encode_documents(self, texts: list[str]) -> M3Output:
        return self.output[[int(t) for t in texts]]


def exact(q: M3Output, d: M3Output, i: int) -> dict[str, float]:
    sparse = sum(w * d.sparse[i].get(t, 0.0) for t, w in q.sparse[0].items())
    return {"dense": float(q.dense[0] @ d.dense[i]), "sparse": float(sparse),
            "colbert": float((q.colbert[0] @ d.colbert[i].T).max(axis=1).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="hub id or directory of a BGE-M3 model")
    source.add_argument("--random-model", type=int, metavar="LAYERS",
                        help="a random full-width (1024) model with this many layers (no weights needed)")
    ap.add_argument("--texts", required=True, help="passages: a .txt (one per line), a .jsonl, or 'stdlib'")
    ap.add_argument("--queries", default=None, help="queries (same formats); default: openings of passages")
    ap.add_argument("--limit", type=int, default=300, help="passages used")
    ap.add_argument("--n-queries", type=int, default=200)
    ap.add_argument("--max-length", type=int, default=512, help="passage truncation (tokens)")
    ap.add_argument("--storages", nargs="+", default=["float32", "float16", "8bit", "4bit"])
    ap.add_argument("--pool-factors", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--indexes", nargs="+", default=["binary"],
                    help="quantized ColBERT index of the collection ('none': every kept candidate scored exactly)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", default=None, help="write the table as JSON to this file")
    args = ap.parse_args()

    if args.random_model:
        from m3_integrations.testing import build_random_model

        model_dir = build_random_model(Path(tempfile.mkdtemp()) / "m", num_layers=args.random_model,
                                       vocab_size=250002, tokenizer_vocab=8000)
        model_name = f"random full-width model, {args.random_model} layers"
    else:
        model_dir, model_name = args.model, args.model
    encoder = M3Encoder(model_dir, device=args.device)
    passages = read_texts(args.texts, args.limit)
    rng = np.random.default_rng(0)
    if args.queries:
        queries = read_texts(args.queries, args.n_queries)
    else:
        picks = rng.choice(len(passages), size=min(args.n_queries, len(passages)), replace=False)
        queries = [" ".join(passages[i].split()[int(rng.integers(0, 40)):][:12]) for i in picks]
    t = time.perf_counter()
    docs = encoder.encode_documents(passages, max_length=args.max_length)
    qs = [encoder.encode_queries([q]) for q in queries]
    rows = sum(len(c) for c in docs.colbert)
    print(f"# {model_name}; {len(passages)} passages ({rows} ColBERT rows, {rows / len(passages):.0f} per passage), "
          f"{len(queries)} queries; encoded in {time.perf_counter() - t:.0f} s", flush=True)
    truth = []
    for q in qs:
        scores = {i: weighted_score(**exact(q, docs, i)) for i in range(len(passages))}
        truth.append(set(sorted(scores, key=lambda i: -scores[i])[:10]))

    table = []
    print(f"{'storage':>8} {'pool':>4} {'index':>6} {'rows':>7} {'colbert err mean':>16} {'max':>7} "
          f"{'top-10 overlap':>14} {'every candidate':>15} {'default vs every':>16}")
    for storage, pool, index in [(s, p, i) for s in args.storages for p in args.pool_factors for i in args.indexes]:
        edge.COLBERT_INDEX = None if index == "none" else index
        with tempfile.TemporaryDirectory() as tmp:
            store = QdrantEdgeStore(Path(tmp) / "s")
            schema = QdrantSchema(colbert_storage=storage, colbert_pool_factor=pool)
            upsert_documents(store, [{"id": str(i), "text": str(i)} for i in range(len(passages))], "f",
                             Precomputed(docs), schema=schema, show_progress=False)
            errors, overlap, overlap_all, vs_all = [], [], [], []
            for q, best in zip(qs, truth, strict=True):
                hits = hybrid_search(store, "", "f", None, limit=10, query_output=q, prefetch_limit=100)
                every = hybrid_search(store, "", "f", None, limit=10, query_output=q, prefetch_limit=100,
                                      rescore_limit="all")
                errors += [abs(h.scores["colbert"] - exact(q, docs, int(h.id))["colbert"]) for h in hits]
                overlap.append(len(best & {int(h.id) for h in hits}) / 10)
                overlap_all.append(len(best & {int(h.id) for h in every}) / 10)
                vs_all.append(len({h.id for h in hits} & {h.id for h in every}) / 10)
            store.close()
        kept = sum(pooled_length(len(c), pool) for c in docs.colbert)
        row = {"storage": storage, "pool_factor": pool, "colbert_index": index, "rows": kept,
               "colbert_abs_error_mean": round(float(np.mean(errors)), 5),
               "colbert_abs_error_max": round(float(np.max(errors)), 5),
               "top10_overlap": round(float(np.mean(overlap)), 3),
               "top10_overlap_every_candidate": round(float(np.mean(overlap_all)), 3),
               "top10_default_vs_every_candidate": round(float(np.mean(vs_all)), 3)}
        table.append(row)
        print(f"{storage:>8} {pool:>4} {index:>6} {kept:>7} {row['colbert_abs_error_mean']:>16.5f} "
              f"{row['colbert_abs_error_max']:>7.4f} {row['top10_overlap']:>14.3f} "
              f"{row['top10_overlap_every_candidate']:>15.3f} {row['top10_default_vs_every_candidate']:>16.3f}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": model_name, "passages": len(passages),
                                               "queries": len(queries), "results": table}, indent=1))


if __name__ == "__main__":
    main()
