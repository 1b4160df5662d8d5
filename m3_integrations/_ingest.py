"""What every store adapter shares at ingest time.

Document normalisation, deterministic ids, encode-ahead batching (the next batch encodes while the
current one uploads), retries with backoff, progress, and the report of what was not stored.
"""

from __future__ import annotations

import logging
import math
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any

from ._text import check_text
from .encoder.types import M3Output

logger = logging.getLogger(__name__)

ID_NAMESPACE = uuid.UUID("5b0d3c8e-6f4e-4f1a-9a55-6d3e2b1c0a77")
"""Namespace of the deterministic point ids (never change it: stored ids depend on it)."""


@dataclass
class Document:
    """A text to store, with the user's id (optional) and metadata."""

    text: str
    id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The user's id, or the deterministic id derived from the text."""
        return self.id if self.id is not None else point_id(self)


class IngestError(RuntimeError):
    """Some documents could not be stored; ``failed_ids`` names them and ``stored_ids`` the rest.

    Re-running the same ingest stores the missing ones without duplicating the others.
    """

    def __init__(self, message: str, failed_ids: list[str], stored_ids: list[str]) -> None:
        super().__init__(message)
        self.failed_ids = failed_ids
        self.stored_ids = stored_ids


def point_id(doc: Document) -> str:
    """Deterministic UUID (string) of a document: from the user's id if given, else from its text.

    An id equal to the one derived from the text (a document read back with ``get_documents``, whose id is
    its key) is that same point, so storing it again replaces it instead of adding a copy.
    """
    derived = str(uuid.uuid5(ID_NAMESPACE, f"text:{doc.text}"))
    if doc.id is None or doc.id == derived:
        return derived
    return str(uuid.uuid5(ID_NAMESPACE, f"id:{doc.id}"))


def to_document(item: Any, index: int) -> Document:
    """Normalise one input: a string, a ``Document`` or a mapping with ``text`` (+ ``id``, ``metadata``)."""
    if isinstance(item, Document):
        doc = item
    elif isinstance(item, str):
        doc = Document(text=item)
    elif isinstance(item, Mapping):
        if "text" not in item:
            raise ValueError(f"docs[{index}] has no 'text' key (keys: {sorted(map(str, item))})")
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise TypeError(f"docs[{index}]['metadata'] must be a mapping, got {type(metadata).__name__}")
        doc_id = item.get("id")
        doc = Document(text=item["text"], id=None if doc_id is None else str(doc_id), metadata=dict(metadata))
    else:
        raise TypeError(f"docs[{index}] is {type(item).__name__}; expected a str or a mapping with 'text'")
    if not isinstance(doc.text, str):
        raise TypeError(f"docs[{index}] text is {type(doc.text).__name__}, expected str")
    where = f"docs[{index}]" if doc.id is None else f"docs[{index}] (id {doc.id!r})"
    check_text(doc.text, f"{where} text")
    if doc.id is not None:
        check_text(doc.id, f"docs[{index}] id")
    if not isinstance(doc.metadata, Mapping):
        raise TypeError(f"{where} metadata must be a mapping, got {type(doc.metadata).__name__}")
    check_metadata(doc.metadata, where)
    return doc


def check_metadata(metadata: Mapping[str, Any], where: str) -> None:
    """Metadata must be JSON (what both databases store and give back): raises ``TypeError`` / ``ValueError``
    naming ``where``, the key path and the value."""
    def walk(value: Any, path: str) -> None:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{where} metadata{path} is {value!r}: metadata numbers must be finite (JSON, and "
                                 "so the databases, has no NaN or Infinity); store None or leave the key out")
        elif isinstance(value, str):
            check_text(value, f"{where} metadata{path}")
        elif value is None or isinstance(value, int):  # bool is an int
            pass
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(f"{where} metadata{path} has the key {key!r} ({type(key).__name__}); "
                                    "metadata keys must be strings")
                check_text(key, f"{where} metadata{path} key {key!r}")
                walk(item, f"{path}[{key!r}]")
        else:
            hint = " (use a sorted list)" if isinstance(value, (set, frozenset)) else (
                " (use .item() or a str)" if hasattr(value, "item") else "")
            raise TypeError(f"{where} metadata{path} is a {type(value).__name__}: {value!r:.80}; metadata values "
                            f"must be JSON values: str, int, float, bool, None, list or dict{hint}")

    walk(metadata, "")


def iter_documents(docs: Iterable[Any], *, allow_empty: bool = False) -> Iterator[Document]:
    """Normalise documents lazily (generators stream); raises ``ValueError`` if there are none
    (unless ``allow_empty``)."""
    if docs is None or isinstance(docs, (str, bytes, Mapping)):
        raise TypeError("docs must be an iterable of documents (strings or mappings), e.g. a list or a generator")
    if isinstance(docs, Sequence):  # in memory already: every document is checked before anything is written
        documents = [to_document(item, index) for index, item in enumerate(docs)]
        if not documents and not allow_empty:
            raise ValueError("docs is empty: nothing to upsert")
        yield from documents
        return
    empty = True
    for index, item in enumerate(docs):
        empty = False
        yield to_document(item, index)
    if empty and not allow_empty:
        raise ValueError("docs is empty: nothing to upsert")


def nonempty_documents(docs: Iterable[Any]) -> Iterator[Document] | None:
    """The normalised documents (lazily), or ``None`` when there are none: an empty batch is a no-op.

    The first document is read (and validated) before anything else happens.
    """
    documents = iter_documents(docs, allow_empty=True)
    first = next(documents, None)
    return None if first is None else _chain_one(first, documents)


def _batches(docs: Iterator[Document], size: int) -> Iterator[list[Document]]:
    while batch := list(islice(docs, size)):
        yield batch


def _unique(batch: list[Document]) -> list[Document]:
    """The same id twice in one batch: the last one wins, as a re-run would do."""
    return list({point_id(d): d for d in batch}.values())


def _encode_ahead(batches: Iterator[list[Document]], encode: Callable[[list[str]], M3Output],
                  unchanged: Callable[[list[Document]], set[str]] | None = None, depth: int = 2
                  ) -> Iterator[tuple[list[Document], list[Document], M3Output | None]]:
    """Encode in a background thread, ``depth`` batches ahead of the consumer.

    Yields ``(batch, to_write, output)``: ``unchanged(batch)`` names the keys already stored as they are,
    which are neither encoded nor written again (``output`` is ``None`` when nothing is left to encode).
    """
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                unique = _unique(batch)
                same = unchanged(unique) if unchanged is not None else set()
                todo = [d for d in unique if d.key not in same]
                out.put((batch, todo, encode([d.text for d in todo]) if todo else None))
            out.put(done)
        except BaseException as exc:  # surfaced in the consumer
            out.put(exc)

    worker = threading.Thread(target=produce, name="m3-encode-ahead", daemon=True)
    worker.start()
    try:
        while (item := out.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                out.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)


def with_retries(call: Callable[[], Any], *, attempts: int = 3, backoff: float = 0.5,
                 transient: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)) -> Any:
    """Run ``call``, retrying transient errors with exponential backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except transient as exc:
            if attempt == attempts:
                raise
            delay = backoff * 2 ** (attempt - 1)
            logger.warning("transient error (%s), retry %d/%d in %.1fs", exc, attempt, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def run_ingest(
    docs: Iterable[Any],
    encode: Callable[[list[str]], M3Output],
    write: Callable[[list[Document], M3Output], None],
    *,
    batch_size: int = 64,
    show_progress: bool | None = None,
    attempts: int = 3,
    backoff: float = 0.5,
    transient: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError),
    unchanged: Callable[[list[Document]], set[str]] | None = None,
) -> list[str]:
    """Encode and write documents batch by batch; returns the stored keys (user id, else derived id),
    one per input document in input order (a repeated document repeats its key; it is written once).

    ``write`` gets each batch with its encoder output and must be idempotent (upsert by deterministic
    id). A batch that still fails after retries is reported, the others go on, and at the end an
    ``IngestError`` lists what was not stored. ``unchanged(batch)``, when given, returns the keys of the
    batch's documents already stored with the same text and metadata: they are counted as stored without
    being encoded again, so a re-run after a failure resumes instead of starting over. It runs in the
    encoding thread, never at the same time as ``write``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    documents = iter_documents(docs)
    first = next(documents)  # raises on empty input before anything is touched
    stream = _chain_one(first, documents)
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    progress = None
    if show_progress:
        from tqdm.auto import tqdm

        progress = tqdm(desc="upserting", unit="doc")
    stored: list[str] = []
    failed: list[str] = []
    last_error: BaseException | None = None
    store_lock = threading.Lock()  # the look-up of stored copies and the writes never overlap

    def locked_write(batch: list[Document], output: M3Output) -> None:
        with store_lock:
            write(batch, output)

    def locked_unchanged(batch: list[Document]) -> set[str]:
        with store_lock:
            return unchanged(batch)

    skipped_total = 0
    try:
        for batch, todo, output in _encode_ahead(_batches(stream, batch_size), encode,
                                                 locked_unchanged if unchanged is not None else None):
            skipped_total += len({d.key for d in batch}) - len(todo)
            try:
                if todo:
                    with_retries(partial(locked_write, todo, output), attempts=attempts, backoff=backoff,
                                 transient=transient)
                stored.extend(d.key for d in batch)  # one key per input document, repeats included
            except transient as exc:
                last_error = exc
                attempted = {d.key for d in todo}
                stored.extend(d.key for d in batch if d.key not in attempted)
                failed.extend(d.key for d in todo)
                logger.error("could not store %d documents after %d attempts: %s", len(todo), attempts, exc)
            if progress is not None:
                progress.update(len(batch))
    finally:
        if progress is not None:
            progress.close()
    if skipped_total:
        logger.info("%d documents were already stored unchanged and were not encoded again", skipped_total)
    if failed:
        raise IngestError(
            f"{len(failed)} of {len(failed) + len(stored)} documents were not stored ({last_error}); "
            f"re-run the same ingest to store them (stored ones are not duplicated"
            f"{' or encoded again' if unchanged is not None else ''}). First failed ids: {failed[:5]}",
            failed_ids=failed, stored_ids=stored,
        )
    return stored


def _chain_one(first: Document, rest: Iterator[Document]) -> Iterator[Document]:
    yield first
    yield from rest
