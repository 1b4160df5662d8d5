"""``m3 info``: model, device, dtype, store, collections and counts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ._common import (
    can_count,
    collection_fields,
    count_chunks,
    default_model,
    describe_fields,
    field_options,
    fields_as_json,
    normalise_model,
    resolve_target,
)
from ._store import adapter, close_client, list_collections, load_config, open_client


def _model_status(model: str) -> str:
    path = Path(model).expanduser()
    if path.is_dir():
        return "local directory"
    if path.exists():
        return "not a directory"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
        return "in the Hugging Face cache" if isinstance(cached, str) else "not downloaded yet (fetched on first use)"
    except Exception:
        return "unknown"


def run(args: argparse.Namespace) -> int:
    """``m3 info``: model, device, dtype, store, collections and counts."""
    import torch

    from .. import __version__

    db = Path(args.db).expanduser().resolve()
    config = load_config(db)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.dtype:
        dtype = args.dtype
    elif device.startswith("cuda"):
        dtype = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"
    else:
        dtype = "float32"
    info: dict[str, Any] = {"version": __version__, "torch": torch.__version__, "device": device, "dtype": dtype,
                            "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
                            "db": str(db), "index": config is not None}
    collections: list[dict[str, Any]] = []
    if config is None and not args.url:
        model = normalise_model(args.model) if args.model else default_model()
        info.update(model=model, model_status=_model_status(model), store=None)
    else:
        target = resolve_target(args, for_index=False)
        settings = target.settings
        model = normalise_model(args.model) if args.model else settings.get("model") or default_model()
        info.update(model=model, model_status=_model_status(model), store=target.store, location=target.location,
                    default_collection=target.collection)
        module = adapter(target.store)
        given = collection_fields(args, target, module)  # the options / record of the --collection
        client = open_client(target.store, target.db, target.url, target.api_key, target.wait)
        try:
            names = list(target.config.collections)
            listed = list_collections(client)
            for name in listed or []:
                if name not in names:
                    names.append(name)
            known = set(target.config.collections)
            for name in names:
                recorded = target.config.collections.get(name, {}).get("fields")
                fields = given if name == target.collection else (
                    collection_fields(argparse.Namespace(), _with_settings(target, name), module) if recorded else None)
                if not can_count(module, fields):  # the adapter cannot count a collection in that layout
                    collections.append({"name": name, "count": None, "count_unknown": True,
                                        **target.config.collections.get(name, {}), "fields": fields_as_json(fields)})
                    continue
                try:
                    count = count_chunks(module, client, name, fields=fields)
                except Exception:
                    if name in known:
                        raise
                    continue  # not an m3 collection (e.g. an adapter's companion collection)
                if count is None and name not in known:
                    continue
                entry = {"name": name, "count": count}
                entry.update({k: v for k, v in target.config.collections.get(name, {}).items()})
                if fields is not None:
                    entry["fields"] = fields_as_json(fields)
                collections.append(entry)
        finally:
            close_client(client)
    info["collections"] = collections
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    rows = [
        ("m3_integrations", info["version"]),
        ("model", f"{info['model']} ({info['model_status']})"),
        ("device", f"{device} (torch {info['torch']}, {info['cuda_devices']} CUDA device(s))"),
        ("dtype", dtype),
        ("index", str(db) if config is not None else f"none in {db} (run 'm3 index PATH')"),
    ]
    if info.get("store"):
        rows.append(("store", f"{info['store']} ({info['location']})"))
    for entry in collections:
        count = ("count unknown" if entry.get("count_unknown") else "missing" if entry["count"] is None
                 else f"{entry['count']} chunks")
        extra = f", model {entry['model']}" if entry.get("model") and entry["model"] != info["model"] else ""
        default = " (default)" if entry["name"] == info.get("default_collection") else ""
        made = f"; made elsewhere: {describe_fields(entry['fields'])}" if entry.get("fields") else ""
        rows.append(("collection", f"{entry['name']}: {count}{extra}{default}{made}"))
    for key, value in rows:
        print(f"{key + ':':<17}{value}")
    return 0



def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``m3 info`` to the sub-command parsers."""
    p = sub.add_parser("info", parents=[common, field_options()],
                       help="model, device, dtype, store, collections and counts")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=run)


def _with_settings(target: Any, name: str) -> Any:
    """``target`` for another of its collections (its recorded settings)."""
    from dataclasses import replace

    return replace(target, collection=name, settings=dict(target.config.collections.get(name, {})))
