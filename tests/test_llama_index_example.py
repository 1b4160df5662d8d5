"""``examples/llamaindex_index.py`` runs offline on the tiny model, indexes once and reopens without re-indexing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "llamaindex_index.py"


def run_example(*args: str) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def check_first_run(first: str) -> list[str]:
    assert "indexed 5 nodes" in first and "with 1 forward pass(es)" in first
    for mode in ("default", "sparse", "hybrid"):
        assert f"[{mode}] How does hybrid search" in first
    hybrid = first.split("[hybrid] ")[1].splitlines()[1:4]
    assert len(hybrid) == 3 and all("dense=" in line and "sparse=" in line and "colbert=" in line for line in hybrid)
    assert "hybrid" in hybrid[0]  # the document sharing the query's words ranks first
    assert "year >= 2023] ['qdrant']" in first
    assert "[query engine] sources:" in first
    return hybrid


def test_example_qdrant_edge_indexes_then_reopens(tiny_model_dir, tmp_path):
    args = ["--model", str(tiny_model_dir), "--db", str(tmp_path / "edge")]
    hybrid = check_first_run(run_example(*args))
    second = run_example(*args)
    assert "reopened collection 'llamaindex_demo': 5 nodes, nothing re-indexed" in second
    assert "indexed 5 nodes" not in second
    assert second.split("[hybrid] ")[1].splitlines()[1:4] == hybrid  # same results from the stored data


def test_example_milvus(tiny_model_dir, tmp_path):
    check_first_run(run_example("--model", str(tiny_model_dir), "--backend", "milvus", "--db", str(tmp_path / "x.db")))
