"""The locked test environment: README and CI run the same command over the committed constraints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "test-constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"test-constraints.txt: {line!r} is not an exact pin"
            name, version = line.split("==")
            pins[_name(name)] = version
    return pins


def test_readme_and_ci_run_the_same_test_command_over_the_constraints():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (ROOT / "README.md").read_text()
    assert ci == 'pip install torch==2.13.0 && pip install -e ".[test]" -c test-constraints.txt && python -m pytest -q'
    assert f"```bash\n{ci}\n```" in readme


def test_constraints_pin_every_dependency_of_the_test_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    extras = project["optional-dependencies"]
    wanted = list(project["dependencies"])
    pending = ["test"]
    while pending:
        for req in extras[pending.pop()]:
            if req.startswith("m3-integrations["):
                pending += req[req.index("[") + 1:req.index("]")].split(",")
            else:
                wanted.append(req)
    missing = sorted({_name(r) for r in wanted} - set(pins))
    assert not missing, f"add to test-constraints.txt (scripts/test-latest --update-constraints): {missing}"
    assert pins["torch"] == "2.13.0"


def test_the_venv_running_the_suite_matches_the_constraints():
    """A drifted environment explains failures before anything else does (scripts/test-latest unlocks it)."""
    from importlib.metadata import version

    if os.environ.get("M3_TEST_UNLOCKED") == "1":
        pytest.skip("scripts/test-latest runs the suite on the newest releases on purpose")

    pins = _pins()
    for name in ("transformers", "flagembedding", "qdrant-edge-py", "pymilvus", "milvus-lite", "langchain-core"):
        assert version(name).split("+")[0] == pins[name], f"{name} {version(name)} is not the locked {pins[name]}"


def test_runtime_ranges_stay_open():
    """No ceiling on the runtime dependencies unless the package itself breaks (pymilvus 4 is a new API)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        assert "<" not in req and "==" not in req, req


def test_test_latest_script_parses_pytest_failures():
    script = ROOT / "scripts" / "test-latest"
    assert script.stat().st_mode & 0o111, "scripts/test-latest must be executable"
    help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0 and "--update-constraints" in help_text.stdout
    namespace = {"__name__": "test_latest", "__file__": str(script)}
    exec(compile(script.read_text(), str(script), "exec"), namespace)
    output = ("FAILED tests/test_encoder_parity.py::test_reference_implementation_imports - the reference "
              "implementation FlagEmbedding 1.4.2 cannot be imported with transformers 5.24.0\n"
              "ERROR tests/test_a.py::test_b - ModuleNotFoundError: No module named 'x'\n"
              "ERROR tests/test_a.py::test_c - ModuleNotFoundError: No module named 'x'\n")
    output += ("____________ ERROR collecting tests/test_cli.py ____________\n"
               "E   ModuleNotFoundError: No module named 'pypdf'\n"
               "ERROR tests/test_cli.py\n")
    groups = namespace["failures"](output)
    assert groups["ModuleNotFoundError: No module named 'pypdf'"] == ["tests/test_cli.py"]
    assert groups["ModuleNotFoundError: No module named 'x'"] == ["tests/test_a.py::test_b", "tests/test_a.py::test_c"]
    assert len(groups) == 3
    assert namespace["pins"]("torch==2.13.0+cpu\nFoo_Bar==1.0\n") == {"torch": "2.13.0", "foo-bar": "1.0"}
