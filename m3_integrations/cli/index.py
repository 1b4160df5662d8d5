"""``m3 index``: chunk, encode and store files; unchanged files are skipped, changed ones replaced."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import InputError, Record, SourceFile, chunk_text, discover, file_hash, read_records
from ._common import (
    CLIError,
    Target,
    check_model,
    count_chunks,
    display_source,
    load_encoder,
    model_for,
    note,
    resolve_target,
)
from ._store import adapter, close_client, open_client, save_config

DEFAULT_CHUNK_TOKENS = 512
DEFAULT_CHUNK_OVERLAP = 64
MAX_NOTES = 10


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
    from .._query import AllOf, Condition

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


def run(args: argparse.Namespace) -> int:
    """``m3 index``: chunk, encode and store files; unchanged files are skipped, changed ones replaced."""
    target = resolve_target(args, for_index=True)
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
        note(f"skipped {display_source(str(path))}: {reason}")
    if len(skipped) > MAX_NOTES:
        note(f"... and {len(skipped) - MAX_NOTES} more unsupported files skipped")
    if not files:
        raise CLIError(f"no indexable files (.txt .md .json .jsonl .csv) in {' '.join(map(str, args.paths))}")

    settings_key = f"chunk_tokens={args.chunk_tokens};overlap={args.chunk_overlap};text_field={args.text_field}"
    model = model_for(target, args.model)
    check_model(model)
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
    exists = count_chunks(module, client, target.collection) is not None
    plans: list[_FilePlan] = []
    unchanged = empty = 0
    for file in files:
        try:
            records, notes = read_records(file, args.text_field)
        except InputError as exc:
            note(f"skipped {exc}")
            skipped.append((file.path, str(exc)))
            continue
        for message in notes:
            note(f"{display_source(file.source)}: {message}")
        if not records:
            note(f"skipped {display_source(file.source)}: no text")
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

    encoder = load_encoder(model, args.device, args.dtype)
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

    from .._ingest import Document, IngestError

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

    from .._query import AllOf, Condition

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
                       f"file(s) e.g. {display_source(bad[0])}; run the same 'm3 index' again to finish")
    return 0


def _restore(config_file: Path, previous: bytes | None) -> None:
    try:
        if previous is None:
            config_file.unlink(missing_ok=True)
        else:
            config_file.write_bytes(previous)
    except OSError:
        pass


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``m3 index`` to the sub-command parsers."""
    from ._common import non_negative, positive

    p = sub.add_parser("index", parents=[common], help="index files (.txt .md .json .jsonl .csv)",
                       description="Chunk, encode and store files. Re-running skips unchanged files and "
                                   "replaces the chunks of changed ones.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    p.add_argument("--chunk-tokens", type=positive, default=None,
                   help=f"tokens per chunk, <s> and </s> included (default {DEFAULT_CHUNK_TOKENS}, or what the "
                        "collection was built with)")
    p.add_argument("--chunk-overlap", type=non_negative, default=None,
                   help=f"tokens shared by consecutive chunks (default {DEFAULT_CHUNK_OVERLAP}, or the collection's)")
    p.add_argument("--text-field", default=None, help="text field of .json/.jsonl records and .csv column "
                                                      "(default: text, or the collection's)")
    p.add_argument("--batch-size", type=positive, default=64, help="chunks per upsert batch (default 64)")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show the progress bar (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)
