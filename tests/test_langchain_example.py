"""examples/langchain_rag.py runs offline end to end on the tiny model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_langchain_rag_example(tiny_model_dir, tmp_path):
    question = "The quick brown fox jumps over the lazy dog near the river bank."
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "langchain_rag.py"), "--model", str(tiny_model_dir),
         "--device", "cpu", "--db", str(tmp_path / "db"), "--k", "2", "--show-prompt", "--question", question],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert f"Question: {question}" in out
    retrieved = [line for line in out.splitlines() if line.startswith("  [")]
    assert len(retrieved) == 2
    assert retrieved[0].startswith("  [fox] ")  # the question is the text of that document
    assert "dense=" in retrieved[0] and "sparse=" in retrieved[0] and "colbert=" in retrieved[0]
    # the retrieved text reached the model's prompt, and the fake model's answer came back
    assert "[fox] The quick brown fox jumps over the lazy dog near the river bank." in out.split("Prompt:")[1]
    assert "Answer: (fake chat model)" in out
    assert (tmp_path / "db" / "rag").is_dir()  # the embedded store was written where --db said
