"""Finding the files to index: walk folders, skip hidden, ``.gitignore``d and binary files, apply globs."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._types import InputError, SourceFile

DOCUMENT_SUFFIXES = (".pdf", ".docx", ".pptx", ".html", ".htm", ".xhtml", ".ipynb")
RECORD_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv")
BINARY_SUFFIXES = frozenset((
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ico", ".heic", ".psd", ".svgz",
    ".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".tar", ".jar", ".whl", ".egg",
    ".exe", ".dll", ".so", ".dylib", ".o", ".a", ".lib", ".bin", ".dat", ".class", ".pyc", ".pyo", ".wasm",
    ".mp3", ".mp4", ".wav", ".flac", ".ogg", ".m4a", ".avi", ".mov", ".mkv", ".webm",
    ".ttf", ".otf", ".woff", ".woff2", ".eot", ".sqlite", ".db", ".pkl", ".pickle", ".npy", ".npz", ".pt",
    ".pth", ".safetensors", ".onnx", ".parquet", ".arrow", ".feather", ".h5", ".hdf5",
))
UNSUPPORTED_DOCUMENTS = frozenset((".doc", ".xls", ".ppt", ".xlsx", ".odt", ".ods", ".odp", ".key", ".numbers",
                                   ".pages", ".epub", ".rtf"))
SNIFF_BYTES = 8192


def looks_binary(path: Path) -> bool:
    """Whether the first bytes of ``path`` are not text in any encoding ``files.text`` reads."""
    from .text import detect_encoding

    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not head:
        return False
    if b"\0" not in head:
        # a cut multi-byte character at the end of the sample must not make UTF-8 text look binary
        for cut in range(4):
            try:
                head[: len(head) - cut].decode("utf-8")
                return False
            except UnicodeDecodeError:
                continue
    return detect_encoding(head) is None


class _Patterns:
    """Gitignore-style patterns (pathspec's git wildmatch; fnmatch on name and path without it)."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
        try:
            import pathspec

            self.spec: Any = pathspec.PathSpec.from_lines("gitwildmatch", self.lines)
        except ImportError:
            self.spec = None

    def __bool__(self) -> bool:
        return bool(self.lines)

    def match(self, relative: str, is_dir: bool = False) -> bool:
        return bool(self.decide(relative, is_dir))

    def decide(self, relative: str, is_dir: bool = False) -> bool | None:
        """True: matched; False: re-included by a ``!pattern``; None: no pattern applies."""
        if not self.lines:
            return None
        if self.spec is not None:
            path = relative + ("/" if is_dir else "")
            if hasattr(self.spec, "check_file"):  # pathspec >= 0.12.1 tells a "!pattern" from no match
                return self.spec.check_file(path).include
            return self.spec.match_file(path) or None
        name = relative.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatch(name, p.strip().rstrip("/")) or fnmatch.fnmatch(relative, p.strip().strip("/"))
                   for p in self.lines if not p.startswith("!")) or None


def _gitignore(directory: Path) -> _Patterns | None:
    file = directory / ".gitignore"
    if not file.is_file():
        return None
    try:
        patterns = _Patterns(file.read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return None
    return patterns if patterns else None


def discover(paths: Iterable[str | os.PathLike], exclude: Iterable[Path] = (), *,
             include_globs: Sequence[str] = (), exclude_globs: Sequence[str] = (), hidden: bool = False,
             gitignore: bool = True) -> tuple[list[SourceFile], list[tuple[Path, str]]]:
    """Walk the given files and folders; returns ``(files to read, [(skipped path, reason), ...])``.

    Not entered or taken: hidden files and folders (names starting with ``.``, unless ``hidden``), the
    ``exclude`` folders (the index itself), paths a ``.gitignore`` inside the walked folders ignores
    (unless ``gitignore`` is false), paths matching an ``exclude_globs`` pattern and, when
    ``include_globs`` are given, files matching none of them (patterns are gitignore-style, relative to
    the folder given). Binary files (by suffix, or by their first bytes for unknown suffixes) are
    skipped with a reason. A file named directly is always considered. Raises ``InputError`` for a
    path that does not exist.
    """
    excluded = {Path(p).resolve() for p in exclude}
    includes, excludes = _Patterns(include_globs), _Patterns(exclude_globs)
    found: dict[Path, SourceFile] = {}
    skipped: list[tuple[Path, str]] = []

    def consider(file: Path, root: Path) -> None:
        suffix = file.suffix.lower()
        if suffix in BINARY_SUFFIXES:
            skipped.append((file, f"binary file type {suffix!r}"))
            return
        if suffix in UNSUPPORTED_DOCUMENTS:
            skipped.append((file, f"unsupported document type {suffix!r} (save it as PDF, DOCX or PPTX)"))
            return
        if suffix not in DOCUMENT_SUFFIXES + RECORD_SUFFIXES and suffix not in _TEXT_SUFFIXES:
            try:
                if looks_binary(file):
                    skipped.append((file, "binary content"))
                    return
            except OSError as exc:
                skipped.append((file, f"unreadable ({exc.strerror or exc})"))
                return
        found.setdefault(file, SourceFile(file, root))

    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise InputError(f"no such file or directory: {str(raw)!r}")
        path = path.resolve()
        if path.is_file():
            consider(path, path)
            continue
        ignores: dict[Path, _Patterns | None] = {}
        for dirpath, dirnames, filenames in os.walk(path):
            here = Path(dirpath)
            if gitignore:
                ignores[here] = _gitignore(here)
            # the closest .gitignore that has a say decides (a deeper "!pattern" re-includes)
            rules = sorted(((d, p) for d, p in ignores.items() if p is not None and (d == here or d in here.parents)),
                           key=lambda item: len(item[0].parts), reverse=True)

            def ignored(target: Path, is_dir: bool, rules: list = rules, path: Path = path) -> bool:
                relative = target.relative_to(path).as_posix()
                if excludes.match(relative, is_dir):
                    return True
                for d, p in rules:
                    decision = p.decide(target.relative_to(d).as_posix(), is_dir)
                    if decision is not None:
                        return decision
                return False

            kept = []
            for d in sorted(dirnames):
                target = here / d
                if (d.startswith(".") and not hidden) or target.resolve() in excluded or ignored(target, True):
                    continue
                kept.append(d)
            dirnames[:] = kept
            for name in sorted(filenames):
                target = here / name
                if (name.startswith(".") and not hidden) or ignored(target, False):
                    continue
                if includes and not includes.match(target.relative_to(path).as_posix()):
                    continue
                consider(target, path)
    return sorted(found.values(), key=lambda f: f.path), skipped


# Text suffixes read without sniffing first (anything else that is not binary is read as text too).
_TEXT_SUFFIXES = frozenset((
    ".txt", ".text", ".md", ".markdown", ".mdx", ".rst", ".adoc", ".org", ".tex", ".log", ".xml", ".yaml", ".yml",
    ".toml", ".ini", ".cfg", ".conf", ".py", ".pyi", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".go", ".rs",
    ".java", ".kt", ".scala", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".sh", ".bash",
    ".zsh", ".sql", ".r", ".m", ".lua", ".pl", ".css", ".scss", ".vue", ".svelte", ".eml", ".srt", ".vtt",
))
