"""``m3 index`` on a folder of N small files: from scratch, then again with nothing changed, as a user runs it.

Each run is a fresh ``m3 index`` process (what a user waits for: interpreter start, imports, the work), into
an embedded Qdrant Edge index. The claim is the ratio: unchanged re-index / index from scratch, both measured
here in the same run. With ``--previous REV`` the same two runs are made with the CLI of an earlier commit
(exported with ``git archive``) on ``--previous-files`` files, for the ratio against the previous design.

The model is the tiny random one of the tests (BGE-M3 weights cannot be downloaded here); with the real model
indexing from scratch is far slower and the unchanged re-index is the same (it loads no model), so the ratio
here is an upper bound.

    python bench/bench_reindex.py --files 4000 --previous f6527dd --previous-files 1000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("tides moon volcano lava espresso coffee chess opening qdrant vector sparse dense colbert retrieval "
         "bread starter basalt ocean planet orbit").split()


def make_folder(root: Path, n: int) -> Path:
    """``n`` text files of 10-40 words in 20 sub-folders (small files: the hardest case for the ratio)."""
    root.mkdir(parents=True)
    for i in range(n):
        sub = root / f"d{i % 20:02d}"
        sub.mkdir(exist_ok=True)
        words = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(10 + i % 31))
        (sub / f"f{i:05d}.txt").write_text(f"Document {i}. {words}.\n", encoding="utf-8")
    return root


def m3(package_root: Path, *argv: str) -> tuple[float, str]:
    """Run ``python -m m3_integrations.cli ARGV`` with ``package_root`` first on the path; (seconds, stdout)."""
    env = {**os.environ, "PYTHONPATH": str(package_root), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "m3_integrations.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=tempfile.gettempdir())
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"m3 {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def measure(package_root: Path, folder: Path, db: Path, model: Path, repeats: int, json_summary: bool) -> dict:
    flags = ["--db", str(db), "--model", str(model), "--no-progress"]
    scratch, out = m3(package_root, "index", str(folder), *flags, *(["--json"] if json_summary else []))
    again = []
    for _ in range(repeats):
        seconds, out_again = m3(package_root, "index", str(folder), "--db", str(db), "--no-progress",
                                *(["--json"] if json_summary else []))
        again.append(seconds)
    result = {"scratch_s": round(scratch, 3), "unchanged_s": round(min(again), 3),
              "unchanged_all_s": [round(s, 3) for s in again], "ratio": round(min(again) / scratch, 4)}
    if json_summary:
        result["scratch_summary"] = json.loads(out)["seconds"]
        result["unchanged_summary"] = json.loads(out_again)["seconds"]
        result["unchanged_model_loaded"] = json.loads(out_again)["model_loaded"]
    else:
        result["unchanged_output"] = out_again.strip()[:200]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3, help="unchanged re-index runs (the fastest is kept)")
    parser.add_argument("--previous", default=None, help="a git revision of the previous design to compare")
    parser.add_argument("--previous-files", type=int, default=1000,
                        help="files for the previous design (its unchanged re-index grows with the square)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from m3_integrations.testing import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="m3_bench_reindex_"))
    try:
        model = build_tiny_model(work / "tiny-bge-m3")
        results: dict = {"files": args.files, "python": sys.version.split()[0], "cpus": os.cpu_count()}
        folder = make_folder(work / "corpus", args.files)
        results["current"] = measure(ROOT, folder, work / "db", model, args.repeats, json_summary=True)
        print(json.dumps({"current": results["current"]}, indent=2), flush=True)
        if args.previous:
            previous_root = work / "previous"
            previous_root.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.previous, "m3_integrations"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(previous_root)], input=archive, check=True)
            small = make_folder(work / f"corpus{args.previous_files}", args.previous_files)
            results["previous_files"] = args.previous_files
            results["previous"] = measure(previous_root, small, work / "db_prev", model, 1, json_summary=False)
            results["current_same_files"] = measure(ROOT, small, work / "db_cur", model, args.repeats,
                                                    json_summary=True)
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
