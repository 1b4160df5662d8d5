"""``m3``: index files, search them and evaluate the retrieval modes, from the command line.

    m3 index PATH... [--model M] [--db DIR] [--store qdrant-edge|qdrant|milvus] [--url URL] [--collection NAME]
    m3 search "QUERY" [-k K] [--mode M] [--fusion F] [--weights d,s,c] [--json]
    m3 eval --queries FILE --qrels FILE [--grid]
    m3 info
    m3 serve [--model M] [--host 127.0.0.1] [--port 8080] [--max-batch-tokens N] [--api-key-env VAR]

The default index is embedded (Qdrant Edge under ``./.m3``): no server is needed. ``--url`` points the
same commands at a Qdrant or Milvus server. See docs/cli.md.

One module per command (``index``, ``search``, ``eval``, ``info``, ``encode``), each with ``add_parser(sub,
common)`` and ``run(args)``; the options every command shares are in ``_common.common_options``. Importing
this package loads neither torch nor transformers: a command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from . import encode, eval, index, info, search, serve
from ._common import Parser, common_options, redact

COMMANDS = (index, search, eval, encode, info, serve)

logger = logging.getLogger("m3_integrations.cli")


def build_parser() -> argparse.ArgumentParser:
    """The ``m3`` argument parser."""
    from .. import __version__

    parser = Parser(
        prog="m3", description="BGE-M3 dense + sparse + ColBERT retrieval from the command line "
                               "(embedded Qdrant Edge by default; --url for a Qdrant or Milvus server).")
    parser.add_argument("--version", action="version", version=f"m3_integrations {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = common_options()
    for command in COMMANDS:
        command.add_parser(sub, common)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    from .._ingest import IngestError
    from ..encoder import ModelLoadError
    from ..files import InputError
    from ._store import CLIError

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
        # gRPC's C core prints keepalive chatter (GOAWAY too_many_pings between pymilvus and the milvus-lite
        # server during long encodes) straight to stderr; read once, when grpc is first imported (later, lazily)
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    for handler in logging.getLogger().handlers:  # an API key never reaches a log line either
        if not any(isinstance(f, _Redact) for f in handler.filters):
            handler.addFilter(_Redact())
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("m3: interrupted", file=sys.stderr)
        return 130
    except _known_errors() as exc:
        if debug:
            raise
        print(redact(f"m3: error: {_one_line(exc)}"), file=sys.stderr)
        return 1
    except Exception as exc:
        if debug:
            raise
        print(redact(f"m3: error: {type(exc).__name__}: {_one_line(exc)} (set M3_DEBUG=1 for the traceback)"),
              file=sys.stderr)
        return 1


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:1000]
