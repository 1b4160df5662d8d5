"""``m3 index``: extract, chunk, encode and store files; unchanged files cost one hash, changed ones are replaced.

The work is in proportion to what changed: one pass over what the collection holds (source, content
hash and chunk count of every stored chunk) tells which files are unchanged; only new and changed
files are read, chunked and encoded, and the model (torch, transformers) is loaded only when there is
something to encode. ``--prune`` removes the chunks of files that no longer exist.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import InputError, Record, SourceFile, discover, file_chunks, file_hash, read_records
from ._common import (
    CLIError,
    Target,
    check_model,
    collection_fields,
    count_chunks,
    display_source,
    encoder_url,
    field_options,
    fields_as_json,
    fields_kwargs,
    load_encoder,
    model_for,
    note,
    resolve_target,
)
from ._progress import Progress
from ._store import adapter, close_client, open_client, save_config

DEFAULT_CHUNK_TOKENS = 512
DEFAULT_CHUNK_OVERLAP = 64
CHUNKER_VERSION = 2  # part of every content hash: a new chunker re-chunks each file once
MAX_NOTES = 10
SOURCE_BATCH = 256  # sources per query where a store caps the rows of one answer, and per prune delete


@dataclass
class StoredFile:
    """What the collection holds for one source file."""

    chunks: int = 0
    hashes: set[str] = field(default_factory=set)
    expected: int | None = None  # the file_chunks its chunks record

    def holds(self, digest: str) -> bool:
        """All chunks of exactly this content are stored, and nothing else."""
        return self.hashes == {digest} and self.expected == self.chunks


@dataclass
class _FilePlan:
    file: SourceFile
    digest: str
    state: str  # "new", "changed", "incomplete"
    records: list[Record] = field(default_factory=list)
    chunks: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (key, text, metadata)
    tokens: list[int] = field(default_factory=list)


# ------------------------------------------------------------------------------------- index state
def _add(state: dict[str, StoredFile], docs: list[Any]) -> None:
    for doc in docs:
        metadata = doc.metadata or {}
        source = metadata.get("source")
        if not isinstance(source, str):
            continue
        entry = state.setdefault(source, StoredFile())
        entry.chunks += 1
        entry.hashes.add(str(metadata.get("content_hash")))
        if isinstance(metadata.get("file_chunks"), int):
            entry.expected = metadata["file_chunks"]


def scan_index(module: Any, client: Any, collection: str, sources: list[str], *, everything: bool,
               fields: Any = None) -> dict[str, StoredFile]:
    """``{source: StoredFile}`` for what ``collection`` holds, in one pass.

    One ``get_documents`` call returns every chunk on Qdrant. Where a store caps one answer (Milvus:
    16,384 rows), the chunks of ``sources`` are fetched a batch of sources at a time, and with
    ``everything`` the other sources too (for ``--prune``), a window at a time.
    """
    from .._query import Condition

    total = count_chunks(module, client, collection, fields=fields)
    if not total:
        return {}
    names = fields_kwargs(module.get_documents, fields, "m3 index")
    state: dict[str, StoredFile] = {}
    docs = module.get_documents(client, collection_name=collection, **names)
    if len(docs) >= total:
        _add(state, docs)
        return state

    def fetch(batch: list[str]) -> None:
        flt = Condition("source", "in", batch)
        found = module.get_documents(client, collection_name=collection, query_filter=flt, **names)
        if len(found) < count_chunks(module, client, collection, flt, fields):
            if len(batch) == 1:
                raise CLIError(f"{batch[0]} has more chunks than {type(client).__name__} returns in one answer")
            half = len(batch) // 2
            fetch(batch[:half])
            fetch(batch[half:])
            return
        _add(state, found)

    for i in range(0, len(sources), SOURCE_BATCH):
        fetch(sources[i:i + SOURCE_BATCH])
    if everything:
        known = set(sources)
        while True:
            others = Condition("source", "nin", sorted(known)) if known else None
            found = module.get_documents(client, collection_name=collection, query_filter=others, **names)
            new = sorted({d.metadata.get("source") for d in found} - known - {None})
            if not new:
                break
            for i in range(0, len(new), SOURCE_BATCH):
                fetch(new[i:i + SOURCE_BATCH])
            known.update(new)
    return state


def _gone(state: dict[str, StoredFile], roots: list[Path], present: set[str]) -> list[str]:
    """Stored sources under the given roots whose files no longer exist."""
    gone = []
    for source in state:
        if source in present:
            continue
        path = Path(source)
        if any(path == root or root in path.parents for root in roots) and not path.exists():
            gone.append(source)
    return sorted(gone)


# ------------------------------------------------------------------------------------------- command
def run(args: argparse.Namespace) -> int:
    """``m3 index``: chunk, encode and store files; unchanged files are skipped, changed ones replaced."""
    started = time.perf_counter()
    if args.no_colbert and (args.colbert_storage is not None or args.colbert_pool_factor is not None):
        raise CLIError("--no-colbert stores no ColBERT rows: leave out --colbert-storage / --colbert-pool-factor")
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
    progress = Progress(args.progress)
    with progress.phase("scan", 0, "file"):
        files, skipped = discover(args.paths, exclude=[target.db], include_globs=args.include or (),
                                  exclude_globs=args.exclude or (), hidden=args.hidden,
                                  gitignore=args.gitignore)
    if not files and not args.prune:
        raise CLIError(f"no indexable files in {' '.join(map(str, args.paths))}"
                       + (f" ({len(skipped)} skipped: {skipped[0][1]}, ...)" if skipped else ""))

    model = model_for(target, args.model, encoder_url(args))
    if not target.has_config or target.collection not in target.config.collections:
        # a new collection always needs the model: fail before any store is touched
        check_model(model, encoder_url(args))
    module = adapter(target.store)
    target.fields = collection_fields(args, target, module)
    if target.fields is not None:
        _check_foreign(args, target, module)
    _colbert_settings(module, args)  # options this store does not take fail before anything is read
    created = not target.db.exists()
    try:
        client = open_client(target.store, target.db, target.url, target.api_key, target.wait)
        try:
            summary = _index(args, target, module, client, files, skipped, model, progress, started)
        finally:
            close_client(client)
    except BaseException:
        if created and not (target.db / "m3.json").exists():
            shutil.rmtree(target.db, ignore_errors=True)  # nothing was stored: leave no empty index behind
        raise
    _report(args, summary)
    if summary["chunks"]["not_stored"]:
        raise CLIError(f"{summary['chunks']['not_stored']} chunks were not stored (from "
                       f"{len(summary['not_stored_files'])} file(s), e.g. "
                       f"{display_source(summary['not_stored_files'][0])}); run the same 'm3 index' again to finish")
    return 0


def _index(args: argparse.Namespace, target: Target, module: Any, client: Any, files: list[SourceFile],
           skipped: list[tuple[Path, str]], model: str, progress: Progress, started: float) -> dict[str, Any]:
    settings_key = (f"chunk_tokens={args.chunk_tokens};overlap={args.chunk_overlap};text_field={args.text_field};"
                    f"chunker={CHUNKER_VERSION}")
    sources = [f.source for f in files]
    with progress.phase("scan", len(files), "file") as phase:
        state = scan_index(module, client, target.collection, sources, everything=args.prune, fields=target.fields)
        exists = bool(state) or count_chunks(module, client, target.collection, fields=target.fields) is not None
        if target.fields is not None and not exists:
            raise CLIError(f"collection {target.collection!r} does not exist in {target.location}: --dense-vector / "
                           "--sparse-vector / --text-key / --metadata-key name an existing collection made elsewhere; "
                           "leave them out to create one in this package's layout")
        plans: list[_FilePlan] = []
        unchanged = 0
        failed: list[tuple[str, str]] = []
        for file in files:
            try:
                digest = file_hash(file.path, settings_key)
            except OSError as exc:
                failed.append((file.source, f"cannot read ({exc.strerror or exc})"))
                continue
            stored = state.get(file.source)
            if stored is not None and stored.holds(digest):
                unchanged += 1
            else:
                plans.append(_FilePlan(file, digest, "new" if stored is None else
                                       ("incomplete" if stored.hashes == {digest} else "changed")))
            phase.update()

    pruned_files, pruned_chunks = _prune(args, target, module, client, state, set(sources)) if args.prune else (0, 0)

    with progress.phase("extract", len(plans), "file") as phase:
        empty = 0
        readable: list[_FilePlan] = []
        for plan in plans:
            try:
                records, notes = read_records(plan.file, args.text_field)
            except InputError as exc:
                failed.append((plan.file.source, _reason(exc, plan.file)))
                phase.update()
                continue
            for message in notes:
                note(f"{display_source(plan.file.source)}: {message}")
            if records:
                plan.records = records
                readable.append(plan)
            else:
                note(f"skipped {display_source(plan.file.source)}: no text")
                empty += 1
            phase.update()
    plans = readable
    for source, reason in failed:
        note(f"not indexed {display_source(source)}: {reason}")

    summary: dict[str, Any] = {
        "collection": target.collection, "store": target.store, "location": target.location,
        "files": {"found": len(files), "indexed": 0, "new": 0, "changed": 0, "unchanged": unchanged,
                  "empty": empty, "failed": len(failed), "skipped": len(skipped), "pruned": pruned_files},
        "chunks": {"stored": 0, "replaced": 0, "pruned": pruned_chunks, "not_stored": 0},
        "tokens": 0, "model_loaded": False,
        "failed": [{"path": s, "reason": r} for s, r in failed],
        "skipped": [{"path": p.as_posix(), "reason": r} for p, r in skipped],
        "not_stored_files": [],
    }
    if not plans:
        if not unchanged and not pruned_files and not (args.prune and not files):
            raise CLIError(f"no text to index in the given files ({len(failed)} could not be read, {empty} empty)")
        return _finish(summary, progress, started)

    check_model(model, encoder_url(args))
    encoder = load_encoder(model, args.device, args.dtype, encoder_url(args))
    summary["model_loaded"] = True
    tokenizer = encoder.tokenizer.backend_tokenizer
    with progress.phase("chunk", len(plans), "file") as phase:
        for plan in plans:
            for chunk in file_chunks(plan.file, plan.records, tokenizer, args.chunk_tokens, args.chunk_overlap,
                                     content_hash=plan.digest):
                plan.chunks.append((chunk.id, chunk.text, chunk.metadata))
                plan.tokens.append(chunk.tokens)
            phase.update()
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
    if target.fields is not None:
        target.config.collections[target.collection]["fields"] = fields_as_json(target.fields)
    save_config(target.db, target.config)

    from .._errors import CollectionNotFoundError, SchemaMismatchError
    from .._ingest import Document, IngestError

    failed_ids: set[str] = set()
    with progress.phase("encode", total, "chunk") as phase:
        def documents() -> Iterator[Document]:
            for plan in plans:
                for (key, text, metadata), tokens in zip(plan.chunks, plan.tokens, strict=True):
                    yield Document(text=text, id=key, metadata=metadata)
                    phase.update(1, tokens)

        try:
            if getattr(args, "ray", False):
                _ray_ingest(args, target, module, client, list(documents()), model, encoder.dim)
            else:
                module.upsert_documents(client, documents(), collection_name=target.collection, encoder=encoder,
                                        batch_size=args.batch_size, show_progress=False,
                                        **_colbert_settings(module, args),
                                        **fields_kwargs(module.upsert_documents, target.fields, "m3 index"))
        except IngestError as exc:
            failed_ids = set(exc.failed_ids)
        except (SchemaMismatchError, CollectionNotFoundError) as exc:  # checked before anything was written
            if not exists:
                _restore(config_file, previous)
            raise CLIError(str(exc)) from None
        except KeyboardInterrupt:
            raise CLIError(f"interrupted while storing {total} chunks: the index holds part of them; run the same "
                           "'m3 index' again to finish (stored chunks are not duplicated)") from None
        except Exception as exc:
            if not exists:
                _restore(config_file, previous)
            raise CLIError(f"storing chunks in {target.location} failed ({type(exc).__name__}: {exc}); the index "
                           "may hold part of them: run the same 'm3 index' again to finish") from None

    from .._query import AllOf, Condition

    complete = [p for p in plans if not any(key in failed_ids for key, _, _ in p.chunks)]
    replaced = 0
    for plan in complete:
        if plan.state != "new":  # drop chunks of the old content (a file that got shorter keeps none)
            stale = AllOf((Condition("source", "eq", plan.file.source), Condition("content_hash", "ne", plan.digest)))
            module.delete_by_filter(client, stale, collection_name=target.collection,
                                    **fields_kwargs(module.delete_by_filter, target.fields, "m3 index"))
            replaced += state[plan.file.source].chunks if plan.file.source in state else 0
    files_summary = summary["files"]
    files_summary["indexed"] = len(complete)
    files_summary["new"] = sum(p.state == "new" for p in complete)
    files_summary["changed"] = len(complete) - files_summary["new"]
    summary["chunks"].update(stored=sum(len(p.chunks) for p in complete), replaced=replaced,
                             not_stored=len(failed_ids))
    summary["tokens"] = sum(sum(p.tokens) for p in complete)
    summary["not_stored_files"] = [p.file.source for p in plans if p not in complete]
    return _finish(summary, progress, started)


def _prune(args: argparse.Namespace, target: Target, module: Any, client: Any, state: dict[str, StoredFile],
           present: set[str]) -> tuple[int, int]:
    """Delete the chunks of files under the given paths that no longer exist; ``(files, chunks)`` removed."""
    from .._query import Condition

    roots = [Path(p).expanduser().resolve() for p in args.paths]
    gone = _gone(state, roots, present)
    for i in range(0, len(gone), SOURCE_BATCH):
        module.delete_by_filter(client, Condition("source", "in", gone[i:i + SOURCE_BATCH]),
                                collection_name=target.collection,
                                **fields_kwargs(module.delete_by_filter, target.fields, "m3 index --prune"))
    return len(gone), sum(state[s].chunks for s in gone)


def _reason(exc: InputError, file: SourceFile) -> str:
    text = str(exc)
    prefix = f"{file.path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _finish(summary: dict[str, Any], progress: Progress, started: float) -> dict[str, Any]:
    elapsed = time.perf_counter() - started
    files = summary["files"]
    summary["seconds"] = {**{k: round(v, 4) for k, v in progress.seconds.items()}, "total": round(elapsed, 4)}
    rate = 1 / elapsed if elapsed > 0 else 0.0
    summary["rates"] = {"files_per_s": round(files["indexed"] * rate, 2),
                        "chunks_per_s": round(summary["chunks"]["stored"] * rate, 2),
                        "tokens_per_s": round(summary["tokens"] * rate, 2)}
    return summary


def _report(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    skipped = summary["skipped"]
    for item in skipped[:MAX_NOTES]:
        note(f"skipped {display_source(item['path'])}: {item['reason']}")
    if len(skipped) > MAX_NOTES:
        reasons = Counter(item["reason"] for item in skipped[MAX_NOTES:])
        note(f"... and {len(skipped) - MAX_NOTES} more skipped: "
             + ", ".join(f"{n} {reason}" for reason, n in reasons.most_common(5))
             + (" ..." if len(reasons) > 5 else "") + " (all in 'm3 index --json')")
    files, chunks = summary["files"], summary["chunks"]
    where = f"collection {summary['collection']!r} in {summary['location']}"
    tail = []
    if files["empty"]:
        tail.append(f"{files['empty']} empty")
    if files["failed"]:
        tail.append(f"{files['failed']} not readable")
    if files["skipped"]:
        tail.append(f"{files['skipped']} skipped")
    if files["pruned"]:
        tail.append(f"pruned {files['pruned']} deleted file(s) ({chunks['pruned']} chunks)")
    extra = ("; " + "; ".join(tail)) if tail else ""
    if not files["indexed"] and not chunks["not_stored"]:
        print(f"nothing to do: {files['unchanged']} file(s) unchanged{extra} -> {where}")
        return
    seconds, rates = summary["seconds"]["total"], summary["rates"]
    print(f"indexed {files['indexed']} file(s) ({files['new']} new, {files['changed']} replaced), "
          f"{chunks['stored']} chunks, {summary['tokens']:,} tokens in {seconds:.1f} s "
          f"({rates['files_per_s']:.1f} files/s, {rates['chunks_per_s']:.1f} chunks/s, "
          f"{rates['tokens_per_s']:,.0f} tokens/s); {files['unchanged']} unchanged{extra} -> {where}")


def _restore(config_file: Path, previous: bytes | None) -> None:
    try:
        if previous is None:
            config_file.unlink(missing_ok=True)
        else:
            config_file.write_bytes(previous)
    except OSError:
        pass



def _ray_ingest(args: argparse.Namespace, target: Target, module: Any, client: Any, docs: list[Any], model: str,
                dim: int) -> None:
    """Encode the chunks on a Ray actor pool (``--ray``): the actors write to a server, this process to an
    embedded store; same chunks, ids and collection as without ``--ray``."""
    if encoder_url(args):
        raise CLIError("--ray loads the model in each Ray actor: leave out --encoder-url")
    try:
        import ray
    except ImportError:
        raise CLIError('--ray needs Ray: pip install "m3-integrations[ray]"') from None
    from ..ray import MilvusTarget, QdrantTarget, ingest_dataset

    settings = _colbert_settings(module, args)
    where: dict[str, Any] = {"client": client} if not target.url else (
        {"url": target.url, "api_key": target.api_key} if module.__name__.endswith(".qdrant")
        else {"uri": target.url, "token": target.api_key})
    ray_target = (QdrantTarget if module.__name__.endswith(".qdrant") else MilvusTarget)(
        collection_name=target.collection, **where, **settings)
    if not ray.is_initialized():
        ray.init(address=args.ray_address, log_to_driver=False)
    kwargs = {k: v for k, v in (("device", args.device), ("dtype", args.dtype)) if v}
    rows = [{"text": d.text, "id": d.id, "metadata": json.dumps(d.metadata)} for d in docs]
    ingest_dataset(ray.data.from_items(rows), ray_target, model, concurrency=args.concurrency,
                   num_gpus=args.num_gpus, batch_size=args.batch_size, encoder_kwargs=kwargs, dim=dim)


def _colbert_settings(module: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The ColBERT options (and Milvus' ``--consistency-level``) of ``m3 index`` as the store module takes them
    (none: the collection's)."""
    options = _colbert_options(module, args)
    level = getattr(args, "consistency_level", None)
    if level is not None:
        if "consistency_level" not in inspect.signature(module.upsert_documents).parameters:
            raise CLIError("--consistency-level is a Milvus setting (--store milvus)")
        options["consistency_level"] = level
    return options


def _colbert_options(module: Any, args: argparse.Namespace) -> dict[str, Any]:
    storage, pool = args.colbert_storage, args.colbert_pool_factor
    without = True if getattr(args, "no_colbert", False) else None
    if storage is None and pool is None and without is None:
        return {}
    if without and (storage is not None or pool is not None):
        raise CLIError("--no-colbert stores no ColBERT rows: leave out --colbert-storage / --colbert-pool-factor")
    if module.__name__.endswith(".qdrant"):
        from ..qdrant import QdrantSchema

        return {"schema": QdrantSchema(colbert_storage=storage, colbert_pool_factor=pool,
                                       with_colbert=False if without else None)}
    options: dict[str, Any] = {"colbert_storage": storage, "colbert_pool_factor": pool}
    if without:
        if "with_colbert" not in inspect.signature(module.upsert_documents).parameters:
            raise CLIError("--no-colbert is not supported by this store's adapter")
        options["with_colbert"] = False
    return options


def _check_foreign(args: argparse.Namespace, target: Target, module: Any) -> None:
    """Refuse, before anything is read or loaded, what ``m3 index`` cannot do on a collection made elsewhere."""
    for option, given in (("--colbert-storage", args.colbert_storage), ("--colbert-pool-factor",
                                                                          args.colbert_pool_factor),
                          ("--no-colbert", args.no_colbert or None), ("--ray", args.ray or None),
                          ("--consistency-level", getattr(args, "consistency_level", None))):
        if given is not None:
            raise CLIError(f"{option} does not apply to a collection made elsewhere (--dense-vector / --sparse-vector"
                           " / --text-key / --metadata-key): it is written in its own layout, dense + sparse only")
    for function in ("upsert_documents", "get_documents", "count_documents", "delete_by_filter"):
        fields_kwargs(getattr(module, function), target.fields,
                      f"m3 index into a {target.store} collection made elsewhere")

def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``m3 index`` to the sub-command parsers."""
    from ._common import non_negative, positive

    p = sub.add_parser("index", parents=[common, field_options()],
                       help="index files (PDF, DOCX, PPTX, HTML, Markdown, text, code, notebooks, JSON/JSONL/CSV/TSV)",
                       description="Extract, chunk, encode and store files. Re-running skips unchanged files "
                                   "(without loading the model) and replaces the chunks of changed ones. Hidden, "
                                   ".gitignored and binary files are skipped.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    p.add_argument("--include", action="append", metavar="GLOB",
                   help="only files matching GLOB (gitignore-style, relative to PATH; repeatable)")
    p.add_argument("--exclude", action="append", metavar="GLOB",
                   help="leave out files and folders matching GLOB (repeatable)")
    p.add_argument("--hidden", action="store_true", help="also index hidden files and folders (.name)")
    p.add_argument("--no-gitignore", dest="gitignore", action="store_false",
                   help="also index what .gitignore files leave out")
    p.add_argument("--prune", action="store_true",
                   help="remove the chunks of files under PATH that no longer exist")
    p.add_argument("--chunk-tokens", type=positive, default=None,
                   help=f"tokens per chunk, <s> and </s> included (default {DEFAULT_CHUNK_TOKENS}, or what the "
                        "collection was built with)")
    p.add_argument("--chunk-overlap", type=non_negative, default=None,
                   help=f"tokens shared by consecutive chunks (default {DEFAULT_CHUNK_OVERLAP}, or the collection's)")
    p.add_argument("--text-field", default=None, help="text field of .json/.jsonl records and .csv/.tsv column "
                                                      "(default: text, or the collection's)")
    p.add_argument("--batch-size", type=positive, default=64, help="chunks per upsert batch (default 64)")
    p.add_argument("--colbert-storage", default=None, choices=("float32", "float16", "8bit", "4bit", "1bit"),
                   help="how a new index stores ColBERT rows (default 4bit on Qdrant; recorded with the index, "
                        "so search needs no flag; an existing index must match)")
    p.add_argument("--colbert-pool-factor", type=positive, default=None, metavar="N",
                   help="token pooling of documents' ColBERT rows: keep rows // N (default 1 = off; recorded with "
                        "the index)")
    p.add_argument("--no-colbert", action="store_true",
                   help="a new collection of dense + sparse vectors only (recorded with it: search needs no flag; "
                        "hybrid fuses dense + sparse, --mode colbert is refused)")
    p.add_argument("--consistency-level", default=None, choices=("Strong", "Bounded", "Session", "Eventually"),
                   help="Milvus: the consistency level a new collection is created with (default Strong; an "
                        "existing one must have it)")
    p.add_argument("--ray", action="store_true",
                   help="encode on a Ray actor pool (pip install 'm3-integrations[ray]'); same chunks and ids")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="the Ray cluster to join (default: RAY_ADDRESS, a running local Ray, else a new local one)")
    p.add_argument("--num-gpus", type=float, default=0, metavar="N", help="GPUs per Ray actor (default 0)")
    p.add_argument("--concurrency", type=positive, default=1, metavar="N", help="Ray actors (default 1)")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show progress bars (default: when stderr is a terminal)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)
