"""``m3 index`` on a real mixed folder: every file type generated here, locations in ``m3 search --json``,
re-indexing without the model, ``--prune``, ``--json``, include/exclude, .gitignore. Nothing is mocked."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from m3_integrations.cli import main
from m3_integrations.qdrant import Condition, QdrantEdgeStore, count_documents, get_documents


def run(argv: list) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()

REPO = Path(__file__).resolve().parents[1]
FRENCH = "La crème brûlée est très appréciée à Genève. Où est le garçon naïf?"
CHUNK = ["--chunk-tokens", "64", "--chunk-overlap", "8", "--no-progress"]


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of text per page (Helvetica), written by hand."""
    objects: list[str | bytes | None] = ["<< /Type /Catalog /Pages 2 0 R >>", None,
                                         "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode("latin-1") + stream + b"\nendstream")
        content = len(objects)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
                       "/Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(len(objects))
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        data = body if isinstance(body, bytes) else str(body).encode("latin-1")
        out += f"{number} 0 obj\n".encode() + data + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def make_mixed_folder(root: Path) -> Path:
    """Every listed file type, plus an empty file, a corrupt PDF and binaries."""
    import docx
    import pptx

    root.mkdir(parents=True)
    (root / "report.pdf").write_bytes(make_pdf(["Volcanoes erupt basalt lava on the first page.",
                                                "Tides follow the moon on the second page."]))
    document = docx.Document()
    document.add_heading("Espresso guide", level=1)
    document.add_paragraph("Espresso needs finely ground coffee and nine bars of pressure.")
    document.add_heading("Milk", level=2)
    document.add_paragraph("Steam the milk to sixty degrees.")
    document.save(str(root / "coffee.docx"))
    deck = pptx.Presentation()
    for title, body in (("Chess", "Openings control the centre."), ("Endgames", "Kings become active pieces.")):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(root / "chess.pptx"))
    (root / "page.html").write_text(
        "<html><head><title>Bread</title><script>var x = 'never indexed';</script></head><body>"
        "<h1>Sourdough</h1><p>Sourdough bread needs a starter.</p><h2>Baking</h2><p>Bake at 250 degrees.</p>"
        "</body></html>", encoding="utf-8")
    (root / "notes.md").write_text("# Qdrant\n\nQdrant stores vectors.\n\n## Edge\n\nThe embedded engine.\n",
                                   encoding="utf-8")
    (root / "french.txt").write_bytes(FRENCH.encode("latin-1"))
    (root / "utf16.txt").write_text("Größere Übungen für Bäcker in UTF-16.", encoding="utf-16")
    (root / "tool.py").write_text("import os\n\n\ndef main():\n    \"\"\"Print the home folder.\"\"\"\n"
                                  "    print(os.environ['HOME'])\n", encoding="utf-8")
    (root / "analysis.ipynb").write_text(json.dumps({
        "cells": [{"cell_type": "markdown", "source": ["# Analysis\n", "Plot the tides."]},
                  {"cell_type": "code", "source": "import numpy as np\nnp.arange(3)", "outputs": []}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    (root / "data.jsonl").write_text(json.dumps({"id": "r1", "text": "Milvus stores vectors too."}) + "\n",
                                     encoding="utf-8")
    (root / "table.tsv").write_text("id\ttext\nt1\tLava cools into basalt.\n", encoding="utf-8")
    (root / "empty.txt").write_bytes(b"")
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> garbage")
    (root / "blob").write_bytes(bytes(range(256)) * 8)
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    return root


def search_json(db: Path, query: str, *extra: str) -> list[dict]:
    code, out, err = run(["search", query, "--db", db, "--json", "-k", "50", *extra])
    assert code == 0, err
    return json.loads(out)


def test_mixed_folder_every_readable_file_indexed_with_locations(tmp_path, tiny_model_dir):
    folder = make_mixed_folder(tmp_path / "mixed")
    db = tmp_path / "db"
    code, out, err = run(["index", folder, "--db", db, "--model", tiny_model_dir, *CHUNK, "--json"])
    assert code == 0, err
    summary = json.loads(out)
    readable = {"report.pdf", "coffee.docx", "chess.pptx", "page.html", "notes.md", "french.txt", "utf16.txt",
                "tool.py", "analysis.ipynb", "data.jsonl", "table.tsv"}
    assert summary["files"]["indexed"] == len(readable) and summary["files"]["new"] == len(readable)
    assert summary["files"]["empty"] == 1 and "empty.txt: no text" in err
    assert {Path(f["path"]).name: f["reason"] for f in summary["failed"]} == {
        "corrupt.pdf": summary["failed"][0]["reason"]}
    assert summary["failed"][0]["reason"].startswith("cannot read PDF")
    assert "not indexed" in err and "corrupt.pdf" in err
    skipped = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    assert skipped == {"blob": "binary content", "image.png": "binary file type '.png'"}
    assert summary["model_loaded"] and summary["tokens"] > 0 and summary["rates"]["tokens_per_s"] > 0

    with QdrantEdgeStore(db / "qdrant-edge") as store:
        docs = get_documents(store)
    by_file: dict[str, list] = {}
    for d in docs:
        by_file.setdefault(Path(d.metadata["source"]).name, []).append(d)
    assert set(by_file) == readable
    text_of = {name: " ".join(d.text for d in sorted(ds, key=lambda d: d.metadata["chunk"]))
               for name, ds in by_file.items()}
    assert FRENCH in text_of["french.txt"]  # latin-1 read as latin-1: "crème", not "crčme"
    assert "Größere Übungen für Bäcker" in text_of["utf16.txt"]
    assert "never indexed" not in text_of["page.html"] and "Bake at 250 degrees." in text_of["page.html"]
    assert "np.arange(3)" in text_of["analysis.ipynb"]

    pdf = search_json(db, "tides", "--where", f"source={(folder / 'report.pdf').as_posix()}")
    assert sorted((h["location"]["page"], h["text"]) for h in pdf) == [
        (1, "Volcanoes erupt basalt lava on the first page."), (2, "Tides follow the moon on the second page.")]
    slides = search_json(db, "chess", "--where", f"source={(folder / 'chess.pptx').as_posix()}")
    assert sorted(h["location"]["page"] for h in slides) == [1, 2]
    code_hits = search_json(db, "home", "--where", f"source={(folder / 'tool.py').as_posix()}")
    assert [(h["location"]["line_start"], h["location"]["line_end"]) for h in code_hits] == [(1, 6)]
    md = search_json(db, "edge", "--where", f"source={(folder / 'notes.md').as_posix()}")
    assert sorted((h["location"]["heading"], h["location"]["line_start"]) for h in md) == [
        ("Qdrant", 1), ("Qdrant > Edge", 5)]
    html = search_json(db, "bread", "--where", f"source={(folder / 'page.html').as_posix()}")
    assert sorted(h["location"]["heading"] for h in html) == ["Sourdough", "Sourdough > Baking"]
    word = search_json(db, "milk", "--where", f"source={(folder / 'coffee.docx').as_posix()}")
    assert sorted(h["location"]["heading"] for h in word) == ["Espresso guide", "Espresso guide > Milk"]
    cells = search_json(db, "tides", "--where", f"source={(folder / 'analysis.ipynb').as_posix()}")
    assert sorted(h["location"]["cell"] for h in cells) == [1, 2]

    code, out, err = run(["search", "tides", "--db", db, "-k", "50"])  # the table shows the locations too
    assert code == 0, err
    assert "report.pdf#1 p. 2" in out and "tool.py#0 lines 1-6" in out and "notes.md#1 lines 5-" in out


def _torch_free_reindex(folder: Path, db: Path, *extra: str) -> dict:
    """``m3 index`` in a fresh interpreter; returns its JSON summary and which heavy modules it loaded."""
    argv = ["index", str(folder), "--db", str(db), "--json", "--no-progress", *extra]
    code = ("import json, sys\nfrom m3_integrations.cli import main\n"
            f"rc = main({argv!r})\n"
            "print(json.dumps({'rc': rc, 'loaded': sorted(m for m in ('torch', 'transformers') if m in sys.modules)}))")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    extra_info = json.loads(lines[-1])
    summary = json.loads("\n".join(lines[:-1]))
    return {**summary, **extra_info}


def test_unchanged_reindex_loads_no_model_and_prune_removes_exactly_the_deleted(tmp_path, tiny_model_dir):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(130):
        sub = folder / f"d{i % 4}"
        sub.mkdir(exist_ok=True)
        words = " ".join(f"w{i}x{j}" for j in range(5 + i % 40))  # some files have several chunks
        (sub / f"f{i:03d}.txt").write_text(f"File {i}. {words}.", encoding="utf-8")
    db = tmp_path / "db"
    code, out, err = run(["index", folder, "--db", db, "--model", tiny_model_dir, "--chunk-tokens", "24",
                          "--chunk-overlap", "4", "--no-progress"])
    assert code == 0, err

    again = _torch_free_reindex(folder, db)
    assert again["rc"] == 0 and again["loaded"] == [] and not again["model_loaded"]
    assert again["files"]["unchanged"] == 130 and again["files"]["indexed"] == 0

    with QdrantEdgeStore(db / "qdrant-edge") as store:
        before = {d.id: d.metadata["source"] for d in get_documents(store)}
    deleted = sorted(folder.rglob("*.txt"))[:100]
    for path in deleted:
        path.unlink()
    gone = {p.as_posix() for p in deleted}
    expected_removed = sum(1 for source in before.values() if source in gone)
    assert expected_removed > 100  # several files have more than one chunk

    pruned = _torch_free_reindex(folder, db, "--prune")
    assert pruned["loaded"] == [] and pruned["files"]["pruned"] == 100
    assert pruned["chunks"]["pruned"] == expected_removed and pruned["files"]["unchanged"] == 30
    with QdrantEdgeStore(db / "qdrant-edge") as store:
        after = {d.id: d.metadata["source"] for d in get_documents(store)}
    assert after == {k: v for k, v in before.items() if v not in gone}  # exactly their chunks, nothing else

    code, out, err = run(["index", folder, "--db", db, "--prune"])  # nothing left to prune
    assert code == 0, err
    assert "nothing to do: 30 file(s) unchanged" in out and "pruned" not in out


@pytest.mark.parametrize("store", ["qdrant-edge", "milvus"])
def test_prune_keeps_files_outside_the_given_paths(store, tmp_path, tiny_model_dir):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "one.txt").write_text("Volcanoes erupt lava.", encoding="utf-8")
    (b / "two.txt").write_text("Tides follow the moon.", encoding="utf-8")
    (b / "three.txt").write_text("Espresso needs finely ground coffee.", encoding="utf-8")
    db = tmp_path / "db"
    assert run(["index", a, b, "--db", db, "--store", store, "--model", tiny_model_dir, "--no-progress"])[0] == 0
    (b / "two.txt").unlink()
    code, out, err = run(["index", a, "--db", db, "--prune", "--json"])  # b/ was not given: kept
    assert code == 0, err
    assert json.loads(out)["files"]["pruned"] == 0
    code, out, err = run(["index", a, b, "--db", db, "--prune"])
    assert code == 0, err
    assert "nothing to do: 2 file(s) unchanged; pruned 1 deleted file(s) (1 chunks)" in out
    hits = search_json(db, "anything")
    assert sorted(Path(h["source"]).name for h in hits) == ["one.txt", "three.txt"]


def test_include_exclude_gitignore_and_hidden(tmp_path, tiny_model_dir):
    folder = tmp_path / "repo"
    (folder / "src").mkdir(parents=True)
    (folder / "build").mkdir()
    (folder / ".config").mkdir()
    (folder / ".gitignore").write_text("build/\n*.log\n", encoding="utf-8")
    (folder / "src" / "app.py").write_text("print('hello')\n", encoding="utf-8")
    (folder / "src" / "notes.md").write_text("Notes about the app.\n", encoding="utf-8")
    (folder / "build" / "out.txt").write_text("generated\n", encoding="utf-8")
    (folder / "debug.log").write_text("log line\n", encoding="utf-8")
    (folder / ".config" / "x.txt").write_text("hidden\n", encoding="utf-8")
    (folder / "README").write_text("A readme without an extension.\n", encoding="utf-8")

    def indexed(*extra: str) -> set[str]:
        db = tmp_path / f"db{len(list(tmp_path.iterdir()))}"
        code, out, err = run(["index", folder, "--db", db, "--model", tiny_model_dir, "--no-progress", *extra])
        assert code == 0, err
        with QdrantEdgeStore(db / "qdrant-edge") as store:
            return {Path(d.metadata["source"]).relative_to(folder).as_posix() for d in get_documents(store)}

    assert indexed() == {"src/app.py", "src/notes.md", "README"}
    assert indexed("--include", "*.py") == {"src/app.py"}
    assert indexed("--exclude", "src/") == {"README"}
    assert indexed("--no-gitignore", "--hidden", "--exclude", ".gitignore") == {
        "src/app.py", "src/notes.md", "README", "build/out.txt", "debug.log", ".config/x.txt"}


def test_changed_file_in_json_summary(tmp_path, tiny_model_dir):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_text("Volcanoes erupt lava.", encoding="utf-8")
    (folder / "b.txt").write_text("Tides follow the moon.", encoding="utf-8")
    db = tmp_path / "db"
    assert run(["index", folder, "--db", db, "--model", tiny_model_dir, "--no-progress"])[0] == 0
    (folder / "b.txt").write_text("Tides follow the moon and the sun.", encoding="utf-8")
    code, out, err = run(["index", folder, "--db", db, "--json"])
    assert code == 0, err
    summary = json.loads(out)
    assert {k: summary["files"][k] for k in ("indexed", "new", "changed", "unchanged")} == {
        "indexed": 1, "new": 0, "changed": 1, "unchanged": 1}
    assert summary["chunks"]["stored"] == 1 and summary["chunks"]["replaced"] == 1
    assert set(summary["seconds"]) >= {"scan", "extract", "chunk", "encode", "total"}
    with QdrantEdgeStore(db / "qdrant-edge") as store:
        assert count_documents(store) == 2
        assert [d.text for d in get_documents(store, query_filter=Condition("doc_id", "eq", "b.txt"))] == [
            "Tides follow the moon and the sun."]


def test_cli_imports_no_torch_and_default_model_matches():
    code = ("import sys\nimport m3_integrations.cli\nfrom m3_integrations.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('torch', 'transformers', 'qdrant_client', 'pymilvus') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    from m3_integrations.cli._common import DEFAULT_MODEL
    from m3_integrations.encoder import DEFAULT_MODEL as ENCODER_DEFAULT

    assert DEFAULT_MODEL == ENCODER_DEFAULT


@pytest.mark.parametrize("argv", [["--help"], ["index", "--help"]])
def test_help_exits_zero(argv, capsys):
    assert main(argv) == 0
    assert "usage: m3" in capsys.readouterr().out
