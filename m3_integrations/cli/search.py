"""``m3 search``: hybrid (or single-mode) search with per-mode scores and the source of each hit."""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
from typing import Any

from ._common import (
    CLIError,
    display_source,
    encoder_url,
    field_options,
    fields_kwargs,
    load_encoder,
    location_of,
    open_searchable,
    parse_where,
)
from ._store import close_client


def _hit_json(hit: Any) -> dict[str, Any]:
    metadata = dict(hit.metadata or {})
    return {
        "id": hit.id, "score": float(hit.score), "text": hit.text, "source": metadata.get("source"),
        "doc_id": metadata.get("doc_id"), "chunk": metadata.get("chunk"), "location": location_of(metadata),
        "scores": {k: float(v) for k, v in (hit.scores or {}).items()}, "metadata": metadata,
    }


def _format_table(hits: list[Any]) -> str:
    width = shutil.get_terminal_size((120, 24)).columns
    header = f"{'#':>3}  {'score':>7}  {'dense':>7}  {'sparse':>7}  {'colbert':>7}  source"
    lines = [header]
    for rank, hit in enumerate(hits, start=1):
        md = hit.metadata or {}
        scores = hit.scores or {}
        cells = [f"{scores[m]:7.4f}" if m in scores else f"{'-':>7}" for m in ("dense", "sparse", "colbert")]
        source = (display_source(md["source"], md.get("record"), md.get("chunk"), location_of(md))
                  if md.get("source") else hit.id)
        lines.append(f"{rank:>3}  {hit.score:7.4f}  {'  '.join(cells)}  {source}")
        snippet = " ".join(hit.text.split())
        room = max(width - 6, 40)
        lines.append("     " + (snippet if len(snippet) <= room else snippet[: room - 3] + "..."))
    return "\n".join(lines)


def _read_level(module: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``--consistency-level`` as the store module takes it (Milvus only)."""
    if args.consistency_level is None:
        return {}
    if "consistency_level" not in inspect.signature(module.hybrid_search).parameters:
        raise CLIError("--consistency-level is a Milvus setting (--store milvus)")
    return {"consistency_level": args.consistency_level}


def run(args: argparse.Namespace) -> int:
    """``m3 search``: hybrid (or single-mode) search with per-mode scores."""
    if not args.query.strip():
        raise CLIError("the query is empty")
    target, model, module, client = open_searchable(args)
    try:
        encoder = load_encoder(model, args.device, args.dtype, encoder_url(args))
        hits = module.hybrid_search(client, args.query, collection_name=target.collection, encoder=encoder,
                                    limit=args.k, mode=args.mode, fusion=args.fusion, weights=args.weights,
                                    prefetch_limit=max(args.prefetch_limit, args.k),
                                    query_filter=parse_where(args.where),
                                    **fields_kwargs(module.hybrid_search, target.fields, "m3 search"),
                                    **_read_level(module, args))
    finally:
        close_client(client)
    if args.json:
        print(json.dumps([_hit_json(h) for h in hits], ensure_ascii=False, indent=2))
    elif not hits:
        print("no results")
    else:
        print(_format_table(hits))
    return 0



def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``m3 search`` to the sub-command parsers."""
    from ..encoder.scoring import DEFAULT_WEIGHTS
    from ._common import parse_weights, positive

    p = sub.add_parser("search", parents=[common, field_options()], help="search the index",
                       description="Search with per-mode scores (dense, sparse, ColBERT) and the source of each hit.")
    p.add_argument("query", help="the query text")
    p.add_argument("-k", "--limit", dest="k", type=positive, default=10, help="number of hits (default 10)")
    p.add_argument("--mode", choices=("hybrid", "dense", "sparse", "colbert"), default="hybrid")
    p.add_argument("--fusion", choices=("weighted", "rrf", "dbsf"), default="weighted",
                   help="how hybrid mode fuses the modes (default: weighted, the BGE-M3 reference score)")
    p.add_argument("--weights", type=parse_weights, default=DEFAULT_WEIGHTS, metavar="D,S,C",
                   help="dense,sparse,colbert weights (default 0.4,0.2,0.4)")
    p.add_argument("--prefetch-limit", type=positive, default=100, help="candidates per mode (default 100)")
    p.add_argument("--where", action="append", metavar="KEY=VALUE",
                   help="only hits whose metadata KEY equals VALUE (repeatable; all must hold)")
    p.add_argument("--consistency-level", default=None, choices=("Strong", "Bounded", "Session", "Eventually"),
                   help="Milvus: the consistency level of this search's reads (default: the collection's)")
    p.add_argument("--json", action="store_true", help="print a JSON list of hits")
    p.set_defaults(func=run)
