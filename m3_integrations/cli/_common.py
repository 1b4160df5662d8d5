"""What the ``m3`` commands share: the shared options, argument types, the index a command works on, the model."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._store import (
    DEFAULT_COLLECTION,
    CLIError,
    IndexConfig,
    adapter,
    close_client,
    describe_location,
    load_config,
    open_client,
)

DEFAULT_DB = ".m3"
DEFAULT_MODEL = "BAAI/bge-m3"  # encoder.DEFAULT_MODEL, without importing torch (a test keeps them equal)
LOCATION_KEYS = ("page", "line_start", "line_end", "heading", "cell")
SECRET_ENV = {"qdrant": ("QDRANT_API_KEY",), "milvus": ("MILVUS_TOKEN",)}
_SECRETS: set[str] = set()


def note(message: str) -> None:
    print(redact(f"m3: {message}"), file=sys.stderr)


def normalise_model(model: str) -> str:
    """A local model path is recorded absolute (so the index works from any directory); hub ids as is."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def parse_weights(text: str) -> tuple[float, float, float]:
    from ..encoder.scoring import validate_weights

    try:
        values = [float(x) for x in text.replace(" ", "").split(",")]
        return validate_weights(values)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"--weights must be three numbers 'dense,sparse,colbert' ({exc})") from None


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text}")
    return value


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def parse_where(items: Sequence[str] | None) -> Any:
    """``--where key=value`` (repeatable, all must hold) as a neutral metadata filter."""
    if not items:
        return None
    from .._query import AllOf, Condition

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


def encoder_url(args: argparse.Namespace) -> str | None:
    """The ``m3 serve`` service to encode with: ``--encoder-url``, else ``$M3_ENCODER_URL``, else ``None``."""
    return getattr(args, "encoder_url", None) or os.environ.get("M3_ENCODER_URL") or None


_REMOTES: dict[str, Any] = {}


def remote_encoder(url: str):
    """One ``RemoteEncoder`` per service URL (its key from ``$M3_ENCODER_API_KEY``, never shown)."""
    if url not in _REMOTES:
        from ..remote import RemoteEncoder, RemoteEncoderError

        add_secret(os.environ.get("M3_ENCODER_API_KEY", ""))
        try:
            _REMOTES[url] = RemoteEncoder(url)
        except (RemoteEncoderError, PermissionError, ValueError) as exc:
            raise CLIError(f"encoder service {url}: {exc}") from None
    return _REMOTES[url]


def load_encoder(model: str | None, device: str | None, dtype: str | None, url: str | None = None):
    """The encoder: the ``m3 serve`` service at ``url`` when given (it must serve ``model``), else ``model``
    loaded here (``None``: the default model)."""
    if url:
        encoder = remote_encoder(url)
        if model is not None and encoder.model_name != model:
            raise CLIError(f"the encoder service at {url} serves model {encoder.model_name!r}, not {model!r}; "
                           "point --encoder-url at a service of that model (or leave out --model)")
        return encoder
    from ..encoder import M3Encoder

    model = model or default_model()
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


def display_source(source: str, record: Any = None, chunk: Any = None, location: dict[str, Any] | None = None
                   ) -> str:
    """``path[:record][#chunk]`` relative to the working directory, then the location: ``p. 2``,
    ``lines 10-24``, ``cell 3``, ``§ Install > Linux``."""
    path = Path(source)
    try:
        shown = path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        shown = source
    if record is not None:
        shown += f":{record}"
    if chunk is not None:
        shown += f"#{chunk}"
    return " ".join([shown, *describe_place(location or {})])


def describe_place(location: dict[str, Any]) -> list[str]:
    """A chunk's location in words (empty when it has none)."""
    words = []
    if location.get("page") is not None:
        words.append(f"p. {location['page']}")
    if location.get("cell") is not None:
        words.append(f"cell {location['cell']}")
    if location.get("line_start") is not None:
        start, end = location["line_start"], location.get("line_end", location["line_start"])
        words.append(f"line {start}" if start == end else f"lines {start}-{end}")
    if location.get("heading"):
        words.append(f"§ {location['heading']}")
    return words


def location_of(metadata: dict[str, Any]) -> dict[str, Any]:
    """The location keys of a chunk's metadata."""
    return {k: metadata[k] for k in LOCATION_KEYS if metadata.get(k) is not None}


def resolve_secret(args: argparse.Namespace, store: str, url: str | None) -> str | None:
    """The API key / token for a server: ``--api-key``, else the environment variable the database's own
    client reads (``QDRANT_API_KEY``; ``MILVUS_TOKEN``, or ``MILVUS_USER`` + ``MILVUS_PASSWORD``). Never
    for an embedded store. The value is registered with ``redact`` so no message can show it."""
    secret = getattr(args, "api_key", None)
    if url and not secret:
        for name in SECRET_ENV.get(store, ()):
            secret = os.environ.get(name) or None
            if secret:
                break
        if not secret and store == "milvus" and os.environ.get("MILVUS_USER"):
            secret = f"{os.environ['MILVUS_USER']}:{os.environ.get('MILVUS_PASSWORD', '')}"
    if secret:
        add_secret(secret)
        if ":" in secret:
            add_secret(secret.split(":", 1)[1])
    return secret if url else None


def add_secret(value: str) -> None:
    """Register a value that ``redact`` hides from every message."""
    if value and len(value) >= 3:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


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
    api_key: str | None = field(default=None, repr=False)
    wait: float = 0.0  # --wait: seconds to wait for another process that has the embedded store open
    fields: Any = None  # the names of a collection made elsewhere (QdrantFields / MilvusFields), if it is one

    @property
    def location(self) -> str:
        return describe_location(self.store, self.db, self.url)


def resolve_target(args: argparse.Namespace, *, for_index: bool) -> Target:
    db = Path(args.db).expanduser().resolve()
    config = load_config(db)
    has_config = config is not None
    if config is None:
        # a server, or an embedded store put there by other code, may hold collections indexed elsewhere
        if not for_index and not args.url and not _embedded_data(db, args.store or "qdrant-edge"):
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
                  has_config=has_config, api_key=resolve_secret(args, store, url),
                  wait=getattr(args, "wait", 0.0))


def _embedded_data(db: Path, store: str) -> bool:
    """Whether ``db`` holds the data of an embedded store (Qdrant Edge shards, a milvus-lite file)."""
    if store == "milvus":
        return (db / "milvus.db").exists()
    return store == "qdrant-edge" and (db / "qdrant-edge").is_dir()


def model_for(target: Target, requested: str | None, url: str | None = None) -> str:
    """The model of a command: ``requested``, else the one the collection was indexed with, else the encoder
    service's (``url``), else the default."""
    recorded = target.settings.get("model")
    if requested is None:
        return recorded or (remote_encoder(url).model_name if url else default_model())
    model = normalise_model(requested)
    if recorded and model != recorded:
        raise CLIError(f"collection {target.collection!r} in {target.db} was indexed with model {recorded!r}, not "
                       f"{model!r}; use that model, or another --collection / --db")
    return model


def check_model(model: str, url: str | None = None) -> None:
    """Fail early (before any store is touched) on a model that cannot be found; downloads a hub model.
    With an encoder service (``url``): that it answers and serves ``model``."""
    if url:
        load_encoder(model, None, None, url)
        return
    from ..encoder._loading import resolve_model_dir

    resolve_model_dir(model)


def default_model() -> str:
    """The model used when neither ``--model`` nor the index names one."""
    return DEFAULT_MODEL


def count_chunks(module: Any, client: Any, collection: str, query_filter: Any = None, fields: Any = None
                 ) -> int | None:
    """Number of stored chunks (``None`` if the collection does not exist)."""
    missing = getattr(module, "CollectionNotFoundError", LookupError)
    names = fields_kwargs(module.count_documents, fields, "counting chunks")
    try:
        return int(module.count_documents(client, collection_name=collection, query_filter=query_filter, **names))
    except (LookupError, missing):
        return None
    except Exception as exc:
        if looks_missing(exc):
            return None
        raise


def can_count(module: Any, fields: Any) -> bool:
    """Whether the adapter counts the chunks of this collection (one made elsewhere needs ``fields=``)."""
    return fields is None or "fields" in inspect.signature(module.count_documents).parameters


def looks_missing(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("not found", "not exist", "doesn't exist", "no such collection"))



def open_searchable(args: argparse.Namespace) -> tuple[Target, str, Any, Any]:
    """The index of ``args`` opened for reading: target, model, adapter module and client (the caller closes it).

    Fails with one clear line, before any model is loaded, when the collection is empty or missing.
    """
    target = resolve_target(args, for_index=False)
    model = model_for(target, args.model, encoder_url(args))
    module = adapter(target.store)
    target.fields = collection_fields(args, target, module)
    client = open_client(target.store, target.db, target.url, target.api_key, target.wait)
    try:
        if can_count(module, target.fields) and not count_chunks(module, client, target.collection,
                                                                 fields=target.fields):
            raise CLIError(f"collection {target.collection!r} in {target.location} is empty or missing; "
                           "run 'm3 index PATH' first")
    except BaseException:
        close_client(client)
        raise
    return target, model, module, client



# ------------------------------------------------------------ collections made elsewhere (--dense-vector ...)
FIELD_OPTIONS = (("dense_vector", "dense"), ("sparse_vector", "sparse"), ("text_key", "text"),
                 ("metadata_key", "metadata"), ("id_key", "id"))
"""The options naming a collection made elsewhere, and the ``QdrantFields`` / ``MilvusFields`` attribute of each."""


def collection_fields(args: argparse.Namespace, target: Target, module: Any) -> Any:
    """The names of the collection when it was made elsewhere (``QdrantFields`` / ``MilvusFields``), else ``None``.

    From ``--dense-vector`` / ``--sparse-vector`` / ``--text-key`` / ``--metadata-key`` / ``--id-key`` (the others
    default to the adapter's defaults: langchain-qdrant's layout on Qdrant, Milvus' BGE-M3 tutorial's on Milvus),
    else from what ``m3.json`` recorded for the collection. Options that differ from the record are an error.
    """
    kind = getattr(module, "QdrantFields", None) or getattr(module, "MilvusFields", None)
    given = {attr: getattr(args, option) for option, attr in FIELD_OPTIONS if getattr(args, option, None) is not None}
    recorded = target.settings.get("fields")
    if not given:
        values = recorded
    else:
        values = {attr: getattr(kind(), attr) for _, attr in FIELD_OPTIONS}
        values.update({attr: None if value == "" and attr in ("metadata", "id") else value
                       for attr, value in given.items()})
        if recorded is not None and recorded != values:
            raise CLIError(f"collection {target.collection!r} in {target.location} was indexed with "
                           f"{describe_fields(recorded)}, not {describe_fields(values)}; leave out the options "
                           "(m3.json records them) or use another --collection")
    if values is None:
        return None
    try:
        return kind(**values)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"{target.store} collection {target.collection!r}: {exc}") from None


def describe_fields(values: dict[str, Any]) -> str:
    """The options a field set is given with, as a user would type them."""
    words = []
    for option, attr in FIELD_OPTIONS:
        value = values.get(attr)
        words.append(f"--{option.replace('_', '-')} {json.dumps('' if value is None else value)}")
    return " ".join(words)


def fields_as_json(fields: Any) -> dict[str, Any]:
    """What ``m3.json`` records of a collection made elsewhere."""
    return {attr: getattr(fields, attr) for _, attr in FIELD_OPTIONS}


def fields_kwargs(function: Any, fields: Any, what: str) -> dict[str, Any]:
    """``{"fields": fields}`` for a store function that takes it; a ``CLIError`` naming the function when it does
    not (that adapter cannot do ``what`` on a collection made elsewhere)."""
    if fields is None:
        return {}
    if "fields" not in inspect.signature(function).parameters:
        raise CLIError(f"{what} is not supported on a collection made elsewhere with this store: "
                       f"{function.__module__}.{function.__name__} takes no fields=")
    return {"fields": fields}


def field_options() -> argparse.ArgumentParser:
    """The options naming a collection made elsewhere (``m3 index``, ``search``, ``eval``, ``info``)."""
    options = Parser(add_help=False)
    group = options.add_argument_group(
        "a collection made elsewhere (e.g. by langchain-qdrant or like Milvus' BGE-M3 tutorial; recorded in m3.json)")
    group.add_argument("--dense-vector", metavar="NAME", default=None,
                       help="its dense vector (Qdrant default: the unnamed one, '' names it too; Milvus default: "
                            "dense_vector)")
    group.add_argument("--sparse-vector", metavar="NAME", default=None,
                       help="its sparse vector (default: langchain-sparse on Qdrant, sparse_vector on Milvus)")
    group.add_argument("--text-key", metavar="KEY", default=None,
                       help="the payload key / field of the text (default: page_content on Qdrant, text on Milvus)")
    group.add_argument("--metadata-key", metavar="KEY", default=None,
                       help="the payload key / JSON field of the metadata (default: metadata on Qdrant, none on "
                            "Milvus; '': none: the rest of the payload / the other scalar fields)")
    group.add_argument("--id-key", metavar="KEY", default=None,
                       help="the payload key / field of the document id (default: none: the point id / primary key)")
    return options


# ------------------------------------------------------------------------------------------- parser
class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {redact(_hide_unrecognized(message))} (see '{self.prog} --help')\n")


def _hide_unrecognized(message: str) -> str:
    """argparse's "unrecognized arguments: --api-kye SECRET" names the options only: a mistyped option
    must not print the value that followed it (it may be a key)."""
    prefix = "unrecognized arguments: "
    if not message.startswith(prefix):
        return message
    names = [word.split("=", 1)[0] for word in message[len(prefix):].split() if word.startswith("-")]
    if not names:
        return "unrecognized arguments (values not shown)"
    return f"unrecognized option(s): {' '.join(names)} (values not shown)"


def common_options() -> argparse.ArgumentParser:
    """The options every command takes (the one place to add a shared option): index, store, model, device."""
    from ._store import STORES

    common = Parser(add_help=False)
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
    common.add_argument("--api-key", default=None, metavar="KEY",
                        help="API key (Qdrant) or token (Milvus: TOKEN or USER:PASSWORD) of a --url server "
                             "(default: $QDRANT_API_KEY; $MILVUS_TOKEN or $MILVUS_USER/$MILVUS_PASSWORD); never shown")
    common.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    common.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"),
                        help="model dtype (default: bfloat16/float16 on GPU, float32 on CPU)")
    common.add_argument("--wait", type=seconds, default=0.0, metavar="SECONDS",
                        help="wait up to SECONDS for another process that has the embedded index open "
                             "(default: fail at once, naming that process)")
    common.add_argument("--encoder-url", default=None, metavar="URL",
                        help="encode with an 'm3 serve' service instead of loading the model here (default: "
                             "$M3_ENCODER_URL; its API key from $M3_ENCODER_API_KEY)")
    return common
