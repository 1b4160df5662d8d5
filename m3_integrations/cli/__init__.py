"""``m3``: index files, search them and evaluate the retrieval modes, from the command line.

    m3 index PATH... [--model M] [--db DIR] [--store qdrant-edge|qdrant|milvus] [--url URL] [--collection NAME]
    m3 search "QUERY" [-k K] [--mode M] [--fusion F] [--weights d,s,c] [--json]
    m3 eval --queries FILE --qrels FILE [--grid]
    m3 info

The default index is embedded (Qdrant Edge under ``./.m3``): no server is needed. ``--url`` points the
same commands at a Qdrant or Milvus server. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._cli_files import (
    InputError,
    Record,
    SourceFile,
    chunk_text,
    discover,
    file_hash,
    read_records,
)
from ._cli_store import (
    DEFAULT_COLLECTION,
    STORES,
    CLIError,
    IndexConfig,
    adapter,
    close_client,
    describe_location,
    list_collections,
    load_config,
    open_client,
    save_config,
)

DEFAULT_DB = ".m3"
DEFAULT_CHUNK_TOKENS = 512
DEFAULT_CHUNK_OVERLAP = 64
MAX_NOTES = 10

logger = logging.getLogger("m3_integrations.cli")


# ------------------------------------------------------------------------------------------ helpers
def _note(message: str) -> None:
    print(f"m3: {message}", file=sys.stderr)


def _normalise_model(model: str) -> str:
    """A local model path is recorded absolute (so the index works from any directory); hub ids as is."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def _parse_weights(text: str) -> tuple[float, float, float]:
    from .encoder.scoring import validate_weights

    try:
        values = [float(x) for x in text.replace(" ", "").split(",")]
        return validate_weights(values)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"--weights must be three numbers 'dense,sparse,colbert' ({exc})") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _parse_where(items: Sequence[str] | None) -> Any:
    """``--where key=value`` (repeatable, all must hold) as a neutral metadata filter."""
    if not items:
        return None
    from ._query import AllOf, Condition

    conditions = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CLIError(f"--where expects key=value, got {item!r}")
        try:
            value = json.loads(raw)
            if not isinstance(value, (str, int, float, bool)):
                value = raw
        except json.JSONDecodeError:
            value = raw
        conditions.append(Condition(key.strip(), "eq", value))
    return conditions[0] if len(conditions) == 1 else AllOf(tuple(conditions))


def _load_encoder(model: str, device: str | None, dtype: str | None):
    from .encoder import M3Encoder

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # pragma: no cover - transformers internals
        pass
    try:
        return M3Encoder(model, device=device, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"cannot load model {model!r}: {exc}") from None


def _display_source(source: str, record: Any = None, chunk: Any = None) -> str:
    path = Path(source)
    try:
        shown = path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        shown = source
    if record is not None:
        shown += f":{record}"
    if chunk is not None:
        shown += f"#{chunk}"
    return shown


@dataclass
class Target:
    """Which index a command works on: directory, store, collection, and the collection's settings."""

    db: Path
    store: str
    url: str | None
    collection: str
    config: IndexConfig
    settings: dict[str, Any] = field(default_factory=dict)
    has_config: bool = False

    @property
    def location(self) -> str:
        return describe_location(self.store, self.db, self.url)


def _target(args: argparse.Namespace, *, for_index: bool) -> Target:
    db = Path(args.db).expanduser().resolve()
    config = load_config(db)
    has_config = config is not None
    if config is None:
        if not for_index and not args.url:  # a server may hold collections indexed elsewhere
            raise CLIError(f"no index in {db} (run 'm3 index PATH' first, or pass --db DIR of an existing index)")
        config = IndexConfig()
    if args.store:
        store = args.store
    elif args.url:
        store = config.store if has_config and config.store != "qdrant-edge" else "qdrant"
    else:
        store = config.store if has_config else "qdrant-edge"
    if store == "qdrant-edge" and args.url:
        raise CLIError("--url needs --store qdrant or --store milvus (qdrant-edge is embedded)")
    url = args.url if args.url else (config.url if has_config and store == config.store else None)
    if store == "qdrant" and not url:
        raise CLIError("--store qdrant needs --url (e.g. http://localhost:6333)")
    collection = args.collection or config.default_collection or DEFAULT_COLLECTION
    if has_config and (store != config.store or url != config.url):
        raise CLIError(f"{db / 'm3.json'} describes a {config.store} index at "
                       f"{describe_location(config.store, db, config.url)}, not {store} at "
                       f"{describe_location(store, db, url)}; use another --db for that store")
    settings = dict(config.collections.get(collection, {}))
    return Target(db=db, store=store, url=url, collection=collection, config=config, settings=settings,
                  has_config=has_config)


def _model_for(target: Target, requested: str | None) -> str:
    recorded = target.settings.get("model")
    if requested is None:
        return recorded or _default_model()
    model = _normalise_model(requested)
    if recorded and model != recorded:
        raise CLIError(f"collection {target.collection!r} in {target.db} was indexed with model {recorded!r}, not "
                       f"{model!r}; use that model, or another --collection / --db")
    return model


def _check_model(model: str) -> None:
    """Fail early (before any store is touched) on a model that cannot be found; downloads a hub model."""
    from .encoder._loading import resolve_model_dir

    resolve_model_dir(model)


def _default_model() -> str:
    from .encoder import DEFAULT_MODEL

    return DEFAULT_MODEL


def _count(module: Any, client: Any, collection: str, query_filter: Any = None) -> int | None:
    """Number of stored chunks (``None`` if the collection does not exist)."""
    missing = getattr(module, "CollectionNotFoundError", LookupError)
    try:
        return int(module.count_documents(client, collection_name=collection, query_filter=query_filter))
    except (LookupError, missing):
        return None
    except Exception as exc:
        if _looks_missing(exc):
            return None
        raise


def _looks_missing(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("not found", "not exist", "doesn't exist", "no such collection"))


# -------------------------------------------------------------------------------------------- index
@dataclass
class _FilePlan:
    file: SourceFile
    digest: str
    records: list[Record]
    state: str  # "new", "changed", "incomplete"
    chunks: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (key, text, metadata)


def _chunk_key(file: SourceFile, record: Record, chunk: int) -> str:
    if record.record is None:
        return f"{file.source}#{chunk}"
    return f"{file.source}:{record.record}#{chunk}"


def _file_state(module: Any, client: Any, collection: str, source: str, digest: str, exists: bool) -> str:
    """``unchanged`` (all chunks of this content are there, nothing else), ``new``, ``changed`` or ``incomplete``."""
    if not exists:
        return "new"
    from ._query import AllOf, Condition

    by_source = Condition("source", "eq", source)
    total = module.count_documents(client, collection_name=collection, query_filter=by_source)
    if total == 0:
        return "new"
    same = AllOf((by_source, Condition("content_hash", "eq", digest)))
    docs = module.get_documents(client, collection_name=collection, query_filter=same, limit=1)
    if not docs:
        return "changed"
    expected = docs[0].metadata.get("file_chunks")
    matching = module.count_documents(client, collection_name=collection, query_filter=same)
    return "unchanged" if expected == matching == total else "incomplete"


def cmd_index(args: argparse.Namespace) -> int:
    """``m3 index``: chunk, encode and store files; unchanged files are skipped, changed ones replaced."""
    target = _target(args, for_index=True)
    # chunk settings: the command line, else what this collection was built with, else the defaults
    for name, default in (("chunk_tokens", DEFAULT_CHUNK_TOKENS), ("chunk_overlap", DEFAULT_CHUNK_OVERLAP),
                          ("text_field", "text")):
        if getattr(args, name) is None:
            setattr(args, name, target.settings.get(name, default))
    if not 16 <= args.chunk_tokens <= 8192:
        raise CLIError(f"--chunk-tokens must be between 16 and 8192 (BGE-M3's limit), got {args.chunk_tokens}")
    if args.chunk_overlap > (args.chunk_tokens - 2) // 2:
        raise CLIError(f"--chunk-overlap must be at most half the chunk ({(args.chunk_tokens - 2) // 2} tokens for "
                       f"--chunk-tokens {args.chunk_tokens}), got {args.chunk_overlap}")
    files, skipped = discover(args.paths, exclude=[target.db])
    for path, reason in skipped[:MAX_NOTES]:
        _note(f"skipped {_display_source(str(path))}: {reason}")
    if len(skipped) > MAX_NOTES:
        _note(f"... and {len(skipped) - MAX_NOTES} more unsupported files skipped")
    if not files:
        raise CLIError(f"no indexable files (.txt .md .json .jsonl .csv) in {' '.join(map(str, args.paths))}")

    settings_key = f"chunk_tokens={args.chunk_tokens};overlap={args.chunk_overlap};text_field={args.text_field}"
    model = _model_for(target, args.model)
    _check_model(model)
    module = adapter(target.store)
    created = not target.db.exists()
    try:
        client = open_client(target.store, target.db, target.url)
        try:
            return _index(args, target, module, client, files, skipped, settings_key, model)
        finally:
            close_client(client)
    except BaseException:
        if created and not (target.db / "m3.json").exists():
            shutil.rmtree(target.db, ignore_errors=True)  # nothing was stored: leave no empty index behind
        raise


def _index(args, target: Target, module, client, files, skipped, settings_key: str, model: str) -> int:
    started = time.perf_counter()
    exists = _count(module, client, target.collection) is not None
    plans: list[_FilePlan] = []
    unchanged = empty = 0
    for file in files:
        try:
            records, notes = read_records(file, args.text_field)
        except InputError as exc:
            _note(f"skipped {exc}")
            skipped.append((file.path, str(exc)))
            continue
        for note in notes:
            _note(f"{_display_source(file.source)}: {note}")
        if not records:
            _note(f"skipped {_display_source(file.source)}: no text")
            empty += 1
            continue
        digest = file_hash(file.path, settings_key)
        state = _file_state(module, client, target.collection, file.source, digest, exists)
        if state == "unchanged":
            unchanged += 1
        else:
            plans.append(_FilePlan(file, digest, records, state))
    if not plans:
        if unchanged == 0:
            raise CLIError("no text to index in the given files")
        print(f"nothing to do: {unchanged} file(s) unchanged in collection {target.collection!r} "
              f"({target.location})")
        return 0

    encoder = _load_encoder(model, args.device, args.dtype)
    tokenizer = encoder.tokenizer.backend_tokenizer
    for plan in plans:
        pieces = [(record, n, piece) for record in plan.records
                  for n, piece in enumerate(chunk_text(record.text, tokenizer, args.chunk_tokens, args.chunk_overlap))]
        for record, n, piece in pieces:
            metadata = dict(record.metadata)
            metadata.update(source=plan.file.source, doc_id=record.doc_id, chunk=n, file_chunks=len(pieces),
                            content_hash=plan.digest)
            if record.record is not None:
                metadata["record"] = record.record
            plan.chunks.append((_chunk_key(plan.file, record, n), piece, metadata))
    total = sum(len(p.chunks) for p in plans)

    # Record the model before anything is stored, so the index is never without its config
    # (and put the old config back if nothing at all could be stored).
    config_file = target.db / "m3.json"
    previous = config_file.read_bytes() if config_file.is_file() else None
    target.config.store, target.config.url = target.store, target.url
    target.config.default_collection = target.collection
    target.config.collections[target.collection] = {
        "model": model, "chunk_tokens": args.chunk_tokens, "chunk_overlap": args.chunk_overlap,
        "text_field": args.text_field,
    }
    save_config(target.db, target.config)

    from ._ingest import Document, IngestError

    show = sys.stderr.isatty() if args.progress is None else args.progress
    progress = None
    if show:
        from tqdm.auto import tqdm

        progress = tqdm(total=total, desc="indexing", unit="doc", file=sys.stderr)

    def documents() -> Iterator[Document]:
        for plan in plans:
            for key, text, metadata in plan.chunks:
                yield Document(text=text, id=key, metadata=metadata)
                if progress is not None:
                    progress.update(1)

    failed: set[str] = set()
    stored_count = 0
    try:
        try:
            stored_count = len(module.upsert_documents(client, documents(), collection_name=target.collection,
                                                       encoder=encoder, batch_size=args.batch_size,
                                                       show_progress=False))
        except IngestError as exc:
            failed = set(exc.failed_ids)
            stored_count = len(exc.stored_ids)
        except KeyboardInterrupt:
            raise CLIError(f"interrupted while storing {total} chunks: the index holds part of them; run the same "
                           "'m3 index' again to finish (stored chunks are not duplicated)") from None
        except Exception as exc:
            if not exists:
                _restore(config_file, previous)
            raise CLIError(f"storing chunks in {target.location} failed ({type(exc).__name__}: {exc}); the index "
                           "may hold part of them: run the same 'm3 index' again to finish") from None
    finally:
        if progress is not None:
            progress.close()

    from ._query import AllOf, Condition

    complete = [p for p in plans if not any(key in failed for key, _, _ in p.chunks)]
    replaced = 0
    for plan in complete:
        if plan.state != "new":  # drop chunks of the old content (a file that got shorter keeps none)
            stale = AllOf((Condition("source", "eq", plan.file.source), Condition("content_hash", "ne", plan.digest)))
            module.delete_by_filter(client, stale, collection_name=target.collection)
            replaced += 1
    elapsed = time.perf_counter() - started
    new = sum(p.state == "new" for p in complete)
    chunks_done = sum(len(p.chunks) for p in complete)
    rate = chunks_done / elapsed if elapsed > 0 else 0.0
    print(f"indexed {len(complete)} file(s) ({new} new, {replaced} replaced), {chunks_done} chunks in {elapsed:.1f} s "
          f"({rate:.1f} docs/s); {unchanged} unchanged; {len(skipped)} skipped -> collection "
          f"{target.collection!r} in {target.location}")
    if failed:
        bad = [p.file.source for p in plans if p not in complete]
        raise CLIError(f"{len(failed)} of {total} chunks were not stored ({stored_count} were), from {len(bad)} "
                       f"file(s) e.g. {_display_source(bad[0])}; run the same 'm3 index' again to finish")
    return 0


def _restore(config_file: Path, previous: bytes | None) -> None:
    try:
        if previous is None:
            config_file.unlink(missing_ok=True)
        else:
            config_file.write_bytes(previous)
    except OSError:
        pass


# ------------------------------------------------------------------------------------------- search
def _hit_json(hit: Any) -> dict[str, Any]:
    metadata = dict(hit.metadata or {})
    return {
        "id": hit.id, "score": float(hit.score), "text": hit.text, "source": metadata.get("source"),
        "doc_id": metadata.get("doc_id"), "chunk": metadata.get("chunk"),
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
        source = _display_source(md["source"], md.get("record"), md.get("chunk")) if md.get("source") else hit.id
        lines.append(f"{rank:>3}  {hit.score:7.4f}  {'  '.join(cells)}  {source}")
        snippet = " ".join(hit.text.split())
        room = max(width - 6, 40)
        lines.append("     " + (snippet if len(snippet) <= room else snippet[: room - 3] + "..."))
    return "\n".join(lines)


def _open_searchable(args: argparse.Namespace) -> tuple[Target, str, Any, Any]:
    """The index of ``args`` opened for reading: target, model, adapter module and client (the caller closes it).

    Fails with one clear line, before any model is loaded, when the collection is empty or missing.
    """
    target = _target(args, for_index=False)
    model = _model_for(target, args.model)
    module = adapter(target.store)
    client = open_client(target.store, target.db, target.url)
    try:
        if not _count(module, client, target.collection):
            raise CLIError(f"collection {target.collection!r} in {target.location} is empty or missing; "
                           "run 'm3 index PATH' first")
    except BaseException:
        close_client(client)
        raise
    return target, model, module, client


def cmd_search(args: argparse.Namespace) -> int:
    """``m3 search``: hybrid (or single-mode) search with per-mode scores."""
    if not args.query.strip():
        raise CLIError("the query is empty")
    target, model, module, client = _open_searchable(args)
    try:
        encoder = _load_encoder(model, args.device, args.dtype)
        hits = module.hybrid_search(client, args.query, collection_name=target.collection, encoder=encoder,
                                    limit=args.k, mode=args.mode, fusion=args.fusion, weights=args.weights,
                                    prefetch_limit=max(args.prefetch_limit, args.k),
                                    query_filter=_parse_where(args.where))
    finally:
        close_client(client)
    if args.json:
        print(json.dumps([_hit_json(h) for h in hits], ensure_ascii=False, indent=2))
    elif not hits:
        print("no results")
    else:
        print(_format_table(hits))
    return 0


# --------------------------------------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    """``m3 eval``: nDCG@10 and recall@100 of each mode and fusion (and a weight grid) on the user's data."""
    from ._cli_eval import Setting, default_settings, evaluate, read_qrels, read_queries, run_for, weight_grid

    queries = read_queries(args.queries)
    qrels = read_qrels(args.qrels)
    query_ids = [q for q in queries if q in qrels]
    if not query_ids:
        raise CLIError(f"none of the {len(queries)} query ids in {args.queries} has a judgement in {args.qrels}")
    if len(query_ids) < len(queries):
        _note(f"{len(queries) - len(query_ids)} queries without judgements are not evaluated")
    qrels = {q: qrels[q] for q in query_ids}
    grid = weight_grid(args.grid_step) if args.grid else []
    target, model, module, client = _open_searchable(args)
    try:
        encoder = _load_encoder(model, args.device, args.dtype)
        encoded = encoder.encode_queries([queries[q] for q in query_ids])

        def search(i: int, setting: Setting) -> list[Any]:
            return module.hybrid_search(client, queries[query_ids[i]], collection_name=target.collection,
                                        encoder=encoder, limit=args.depth, mode=setting.mode, fusion=setting.fusion,
                                        weights=setting.weights, prefetch_limit=max(args.depth, 100),
                                        query_output=encoded[i])

        def doc_id_of(hit: Any) -> str:
            return str((hit.metadata or {}).get("doc_id", hit.id))

        results: list[tuple[str, dict[str, float]]] = []
        for setting in default_settings(args.weights):
            results.append((setting.name, evaluate(qrels, run_for(search, query_ids, setting, doc_id_of))))
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


# --------------------------------------------------------------------------------------------- info
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


def cmd_info(args: argparse.Namespace) -> int:
    """``m3 info``: model, device, dtype, store, collections and counts."""
    import torch

    from . import __version__

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
        model = _normalise_model(args.model) if args.model else _default_model()
        info.update(model=model, model_status=_model_status(model), store=None)
    else:
        target = _target(args, for_index=False)
        settings = target.settings
        model = _normalise_model(args.model) if args.model else settings.get("model") or _default_model()
        info.update(model=model, model_status=_model_status(model), store=target.store, location=target.location,
                    default_collection=target.collection)
        module = adapter(target.store)
        client = open_client(target.store, target.db, target.url)
        try:
            names = list(target.config.collections)
            listed = list_collections(client)
            for name in listed or []:
                if name not in names:
                    names.append(name)
            known = set(target.config.collections)
            for name in names:
                try:
                    count = _count(module, client, name)
                except Exception:
                    if name in known:
                        raise
                    continue  # not an m3 collection (e.g. an adapter's companion collection)
                if count is None and name not in known:
                    continue
                entry = {"name": name, "count": count}
                entry.update({k: v for k, v in target.config.collections.get(name, {}).items()})
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
        count = "missing" if entry["count"] is None else f"{entry['count']} chunks"
        extra = f", model {entry['model']}" if entry.get("model") and entry["model"] != info["model"] else ""
        default = " (default)" if entry["name"] == info.get("default_collection") else ""
        rows.append(("collection", f"{entry['name']}: {count}{extra}{default}"))
    for key, value in rows:
        print(f"{key + ':':<17}{value}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    """Encode texts and print their dense, sparse and ColBERT outputs (no store involved)."""
    encoder = _load_encoder(_normalise_model(args.model or _default_model()), args.device, args.dtype)
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


# ------------------------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``m3`` argument parser."""
    from .encoder.scoring import DEFAULT_WEIGHTS

    parser = _Parser(
        prog="m3", description="BGE-M3 dense + sparse + ColBERT retrieval from the command line "
                               "(embedded Qdrant Edge by default; --url for a Qdrant or Milvus server).")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"m3_integrations {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    common = _Parser(add_help=False)
    common.add_argument("--db", default=DEFAULT_DB, metavar="DIR",
                        help="index directory: config, and the embedded store (default: ./.m3)")
    common.add_argument("--store", choices=STORES, default=None,
                        help="qdrant-edge (embedded, default), qdrant (server, needs --url), milvus "
                             "(server with --url, else a milvus-lite file DIR/milvus.db)")
    common.add_argument("--url", default=None, help="Qdrant (http://host:6333) or Milvus (http://host:19530) server")
    common.add_argument("--collection", default=None, help=f"collection name (default: {DEFAULT_COLLECTION}, or "
                                                           "the last one indexed in DIR)")
    common.add_argument("--model", default=None, help="hub id or local directory of a BGE-M3 model "
                                                      "(default: BAAI/bge-m3, or the one the index was built with)")
    common.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    common.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"),
                        help="model dtype (default: bfloat16/float16 on GPU, float32 on CPU)")

    p = sub.add_parser("index", parents=[common], help="index files (.txt .md .json .jsonl .csv)",
                       description="Chunk, encode and store files. Re-running skips unchanged files and "
                                   "replaces the chunks of changed ones.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    p.add_argument("--chunk-tokens", type=_positive, default=None,
                   help=f"tokens per chunk, <s> and </s> included (default {DEFAULT_CHUNK_TOKENS}, or what the "
                        "collection was built with)")
    p.add_argument("--chunk-overlap", type=_non_negative, default=None,
                   help=f"tokens shared by consecutive chunks (default {DEFAULT_CHUNK_OVERLAP}, or the collection's)")
    p.add_argument("--text-field", default=None, help="text field of .json/.jsonl records and .csv column "
                                                      "(default: text, or the collection's)")
    p.add_argument("--batch-size", type=_positive, default=64, help="chunks per upsert batch (default 64)")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show the progress bar (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", parents=[common], help="search the index",
                       description="Search with per-mode scores (dense, sparse, ColBERT) and the source of each hit.")
    p.add_argument("query", help="the query text")
    p.add_argument("-k", "--limit", dest="k", type=_positive, default=10, help="number of hits (default 10)")
    p.add_argument("--mode", choices=("hybrid", "dense", "sparse", "colbert"), default="hybrid")
    p.add_argument("--fusion", choices=("weighted", "rrf", "dbsf"), default="weighted",
                   help="how hybrid mode fuses the modes (default: weighted, the BGE-M3 reference score)")
    p.add_argument("--weights", type=_parse_weights, default=DEFAULT_WEIGHTS, metavar="D,S,C",
                   help="dense,sparse,colbert weights (default 0.4,0.2,0.4)")
    p.add_argument("--prefetch-limit", type=_positive, default=100, help="candidates per mode (default 100)")
    p.add_argument("--where", action="append", metavar="KEY=VALUE",
                   help="only hits whose metadata KEY equals VALUE (repeatable; all must hold)")
    p.add_argument("--json", action="store_true", help="print a JSON list of hits")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("eval", parents=[common], help="nDCG@10 / recall@100 of each mode and fusion",
                       description="Evaluate dense, sparse, ColBERT and the fusions on your own queries and "
                                   "relevance judgements (formats: docs/cli.md).")
    p.add_argument("--queries", required=True, metavar="FILE", help="queries: .jsonl {id, text} or .tsv id<TAB>text")
    p.add_argument("--qrels", required=True, metavar="FILE", help="judgements: TREC qrels, TSV or .jsonl")
    p.add_argument("--weights", type=_parse_weights, default=DEFAULT_WEIGHTS, metavar="D,S,C",
                   help="weights of the weighted hybrid row (default 0.4,0.2,0.4)")
    p.add_argument("--grid", action="store_true", help="also try a grid of weights and report the best")
    p.add_argument("--grid-step", type=float, default=0.2, help="grid step (default 0.2: 21 weight triples)")
    p.add_argument("--depth", type=_positive, default=100, help="hits retrieved per query (default 100)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("encode", parents=[common], help="print the dense, sparse and ColBERT outputs of texts",
                       description="Encode texts with BGE-M3 and print its three outputs (nothing is stored).")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--max-length", type=_positive, default=None, help="truncation length in tokens (default 8192)")
    p.add_argument("--json", action="store_true", help="print full vectors as JSON")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("info", parents=[common], help="model, device, dtype, store, collections and counts")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_info)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    from ._ingest import IngestError
    from .encoder import ModelLoadError

    errors: list[type[BaseException]] = [CLIError, InputError, ModelLoadError, IngestError]
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``m3`` command line; returns the exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    debug = os.environ.get("M3_DEBUG", "").lower() in ("1", "true", "yes")
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="m3: %(levelname)s: %(message)s")
    if not debug:  # milvus-lite's in-process gRPC server logs tracebacks for calls it does not implement
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("m3: interrupted", file=sys.stderr)
        return 130
    except _known_errors() as exc:
        if debug:
            raise
        print(f"m3: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        if debug:
            raise
        print(f"m3: error: {type(exc).__name__}: {_one_line(exc)} (set M3_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:1000]


if __name__ == "__main__":  # python -m m3_integrations.cli
    sys.exit(main())
