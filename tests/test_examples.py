"""examples/quickstart_qdrant.py and examples/milvus_hybrid.py run offline, as a user runs them, on the tiny model.

(examples/langchain_rag.py and examples/llamaindex_index.py have their own test files.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HIT = re.compile(r"^  (\d+)\. \[([^\]]+)\] score=(-?[\d.]+)(.*) \| ")


def _run(script: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True, text=True,
                            timeout=300, env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _sections(out: str) -> dict[str, list[tuple[str, float, str]]]:
    """Each titled block of hits: title -> [(id, score, per-mode scores)]."""
    sections: dict[str, list[tuple[str, float, str]]] = {}
    title = None
    for line in out.splitlines():
        match = HIT.match(line)
        if match:
            sections[title].append((match.group(2), float(match.group(3)), match.group(4)))
        elif line and not line.startswith(" "):
            title = line
            sections[title] = []
    return {t: hits for t, hits in sections.items() if hits}


def test_quickstart_qdrant_embedded(tiny_model_dir, tmp_path):
    query = "The quick brown fox jumps over the lazy dog near the river bank."
    out = _run("quickstart_qdrant.py", "--model", str(tiny_model_dir), "--device", "cpu", "--path",
               str(tmp_path / "edge"), "--query", query, cwd=tmp_path)
    assert "stored 6 documents" in out and "count = 6" in out
    sections = _sections(out)
    assert len(sections) == 4
    weighted, rrf, sparse, nature = sections.values()
    assert [len(weighted), len(rrf), len(sparse)] == [3, 3, 3]
    assert weighted[0][0] == rrf[0][0] == sparse[0][0] == "fox"  # the query is that document's text
    assert "dense=1.0000" in weighted[0][2]
    # ColBERT rows are stored as 4-bit codes by default: a document matches itself within the codes' error,
    # which on the tiny model's 32-d rows reaches ~0.01 (0.004 at BGE-M3's 1024 dims)
    colbert = float(re.search(r"colbert=([\d.]+)", weighted[0][2]).group(1))
    assert 0.985 <= colbert <= 1.0
    assert all(h[1] >= n[1] for h, n in zip(weighted, weighted[1:], strict=False))
    assert {hit[0] for hit in nature} <= {"fox", "tides"}  # the topic=nature filter held
    assert "after deleting 'fox': count = 5" in out
    assert (tmp_path / "edge" / "quickstart").is_dir()  # persisted where --path said


def test_milvus_hybrid_lite_file(tiny_model_dir, tmp_path):
    db = tmp_path / "demo.db"
    out = _run("milvus_hybrid.py", "--model", str(tiny_model_dir), "--device", "cpu", "--uri", str(db),
               "--query", "A double espresso uses 18 grams of finely ground coffee and takes about 28 seconds.",
               cwd=tmp_path)
    assert f"stored 6 documents in {db}" in out
    assert db.exists()
    sections = _sections(out)
    assert len(sections) == 5
    titles = list(sections)
    assert all(hits[0][0] == "espresso" for t, hits in sections.items() if "nature" not in t)
    assert [h[0] for h in sections[titles[3]]] == ["espresso"]  # topic=food and year >= 2022
    assert {h[0] for h in sections[titles[4]]} == {"tides", "volcano"}  # the native expression filter
    assert "after deleting topic=database: 4 left: espresso, sourdough, tides, volcano" in out
