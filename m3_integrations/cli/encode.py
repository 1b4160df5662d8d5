"""``m3 encode``: print the dense, sparse and ColBERT outputs of texts (no store involved)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import encoder_url, load_encoder, normalise_model


def run(args: argparse.Namespace) -> int:
    """Encode texts and print their dense, sparse and ColBERT outputs (no store involved)."""
    encoder = load_encoder(normalise_model(args.model) if args.model else None, args.device, args.dtype,
                           encoder_url(args))
    out = encoder.encode(args.texts, max_length=args.max_length)
    rows = []
    for i, text in enumerate(args.texts):
        sparse = sorted(out.sparse[i].items(), key=lambda item: -item[1])
        rows.append({
            "text": text,
            "dense": [round(float(v), 6) for v in out.dense[i]],
            "sparse": {encoder.tokenizer.convert_ids_to_tokens(t): round(w, 6) for t, w in sparse},
            "sparse_ids": {str(t): round(w, 6) for t, w in sparse},
            "colbert": [[round(float(v), 6) for v in row] for row in out.colbert[i]],
        })
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    print(f"model {encoder.model_name} on {encoder.device} ({str(encoder.dtype).replace('torch.', '')})")
    for row, colbert in zip(rows, out.colbert, strict=True):
        dense = ", ".join(f"{v:+.4f}" for v in row["dense"][:6])
        top = ", ".join(f"{tok!r}: {w:.3f}" for tok, w in list(row["sparse"].items())[:8])
        print(f"\n{row['text'][:80]!r}")
        print(f"  dense   [{len(row['dense'])}]  {dense}, ...")
        print(f"  sparse  {len(row['sparse'])} tokens  {{{top}}}")
        print(f"  colbert [{colbert.shape[0]} x {colbert.shape[1]}]  one unit vector per token after <s>")
    return 0



def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``m3 encode`` to the sub-command parsers."""
    from ._common import positive

    p = sub.add_parser("encode", parents=[common], help="print the dense, sparse and ColBERT outputs of texts",
                       description="Encode texts with BGE-M3 and print its three outputs (nothing is stored).")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--max-length", type=positive, default=None, help="truncation length in tokens (default 8192)")
    p.add_argument("--json", action="store_true", help="print full vectors as JSON")
    p.set_defaults(func=run)
