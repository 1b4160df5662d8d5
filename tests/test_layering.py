"""The layers don't leak: importing a layer never imports what sits above it or beside it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("qdrant_client", "qdrant_edge", "pymilvus", "milvus_lite", "langchain_core", "langchain_qdrant",
         "llama_index", "FlagEmbedding")


def _loaded_after(module: str) -> set[str]:
    code = (f"import json, sys\nimport {module}\n"
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module, allowed", [
    ("m3_integrations", set()),
    ("m3_integrations.qdrant", {"qdrant_client", "qdrant_edge"}),
    ("m3_integrations.milvus", {"pymilvus", "milvus_lite"}),
])
def test_imports_stay_in_their_layer(module, allowed):
    leaked = (_loaded_after(module) & set(HEAVY)) - allowed
    assert not leaked, f"importing {module} imported {sorted(leaked)}"
