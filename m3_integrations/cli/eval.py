"""``m3 eval``: nDCG@10 and recall@100 of each mode and fusion (and a weight grid) on the user's data."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import CLIError, encoder_url, field_options, fields_kwargs, load_encoder, note, open_searchable
from ._store import close_client


def run(args: argparse.Namespace) -> int:
    """``m3 eval``: nDCG@10 and recall@100 of each mode and fusion (and a weight grid) on the user's data."""
    from ._evaluation import Setting, default_settings, evaluate, read_qrels, read_queries, run_for, weight_grid

    queries = read_queries(args.queries)
    qrels = read_qrels(args.qrels)
    query_ids = [q for q in queries if q in qrels]
    if not query_ids:
        raise CLIError(f"none of the {len(queries)} query ids in {args.queries} has a judgement in {args.qrels}")
    if len(query_ids) < len(queries):
        note(f"{len(queries) - len(query_ids)} queries without judgements are not evaluated")
    qrels = {q: qrels[q] for q in query_ids}
    grid = weight_grid(args.grid_step) if args.grid else []
    target, model, module, client = open_searchable(args)
    try:
        encoder = load_encoder(model, args.device, args.dtype, encoder_url(args))
        encoded = encoder.encode_queries([queries[q] for q in query_ids])
        names = fields_kwargs(module.hybrid_search, target.fields, "m3 eval")

        def search(i: int, setting: Setting) -> list[Any]:
            return module.hybrid_search(client, queries[query_ids[i]], collection_name=target.collection,
                                        encoder=encoder, limit=args.depth, mode=setting.mode, fusion=setting.fusion,
                                        weights=setting.weights, prefetch_limit=max(args.depth, 100),
                                        query_output=encoded[i], **names)

        def doc_id_of(hit: Any) -> str:
            return str((hit.metadata or {}).get("doc_id", hit.id))

        results: list[tuple[str, dict[str, float]]] = []
        for setting in default_settings(args.weights):
            if setting.mode == "colbert" and target.fields is not None:
                note(f"{setting.name}: left out (a collection made elsewhere has no ColBERT vectors)")
                continue
            try:
                results.append((setting.name, evaluate(qrels, run_for(search, query_ids, setting, doc_id_of))))
            except ValueError as exc:
                if "needs ColBERT vectors" not in str(exc):
                    raise
                note(f"{setting.name}: left out (the collection has no ColBERT vectors)")
        grid_results: list[tuple[tuple[float, float, float], dict[str, float]]] = []
        for weights in grid:
            setting = Setting("grid", "hybrid", "weighted", weights)
            grid_results.append((weights, evaluate(qrels, run_for(search, query_ids, setting, doc_id_of))))
    finally:
        close_client(client)

    grid_results.sort(key=lambda item: (-item[1]["ndcg@10"], -item[1]["recall@100"]))
    if args.json:
        out: dict[str, Any] = {"queries": len(query_ids), "results": [{"setting": n, **m} for n, m in results]}
        if grid_results:
            out["grid"] = [{"weights": list(w), **m} for w, m in grid_results]
            out["best_weights"] = list(grid_results[0][0])
        print(json.dumps(out, indent=2))
        return 0
    print(f"{len(query_ids)} queries, collection {target.collection!r} ({target.location})")
    name_width = max(len(n) for n, _ in results)
    print(f"{'setting':<{name_width}}  {'nDCG@10':>8}  {'R@100':>8}")
    for name, metrics in results:
        print(f"{name:<{name_width}}  {metrics['ndcg@10']:8.4f}  {metrics['recall@100']:8.4f}")
    if grid_results:
        print(f"\nweight grid (step {args.grid_step:g}, weighted fusion), best first:")
        print(f"{'dense,sparse,colbert':<20}  {'nDCG@10':>8}  {'R@100':>8}")
        for weights, metrics in grid_results[:10]:
            w = ",".join(f"{x:g}" for x in weights)
            print(f"{w:<20}  {metrics['ndcg@10']:8.4f}  {metrics['recall@100']:8.4f}")
        best = ",".join(f"{x:g}" for x in grid_results[0][0])
        print(f"best weights: --weights {best}")
    return 0



def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``m3 eval`` to the sub-command parsers."""
    from ..encoder.scoring import DEFAULT_WEIGHTS
    from ._common import parse_weights, positive

    p = sub.add_parser("eval", parents=[common, field_options()], help="nDCG@10 / recall@100 of each mode and fusion",
                       description="Evaluate dense, sparse, ColBERT and the fusions on your own queries and "
                                   "relevance judgements (formats: docs/cli.md).")
    p.add_argument("--queries", required=True, metavar="FILE", help="queries: .jsonl {id, text} or .tsv id<TAB>text")
    p.add_argument("--qrels", required=True, metavar="FILE", help="judgements: TREC qrels, TSV or .jsonl")
    p.add_argument("--weights", type=parse_weights, default=DEFAULT_WEIGHTS, metavar="D,S,C",
                   help="weights of the weighted hybrid row (default 0.4,0.2,0.4)")
    p.add_argument("--grid", action="store_true", help="also try a grid of weights and report the best")
    p.add_argument("--grid-step", type=float, default=0.2, help="grid step (default 0.2: 21 weight triples)")
    p.add_argument("--depth", type=positive, default=100, help="hits retrieved per query (default 100)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)
