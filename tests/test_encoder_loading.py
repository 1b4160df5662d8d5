"""Loading: local directory, hub id from the HF cache offline, missing heads, unsafe head files."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from m3_integrations import M3Encoder, ModelLoadError


def _copy_without(src: Path, dst: Path, *missing: str) -> Path:
    shutil.copytree(src, dst)
    for name in missing:
        (dst / name).unlink()
    return dst


def test_hub_id_loads_offline_from_the_hf_cache(tiny_model_dir, tmp_path, encoder):
    """The real hub code path (snapshot_download) resolving BAAI/bge-m3 from a local cache, no network."""
    cache = tmp_path / "hub"
    repo = cache / "models--BAAI--bge-m3"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    script = (
        "import json, sys\n"
        "from m3_integrations import M3Encoder\n"
        "enc = M3Encoder('BAAI/bge-m3', device='cpu')\n"
        "out = enc.encode(['hybrid retrieval'])\n"
        "print(json.dumps({'dir': str(enc.model_dir), 'dense': out.dense[0].tolist()}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["dir"].endswith(revision)
    expected = encoder.encode(["hybrid retrieval"]).dense[0]
    assert np.abs(np.array(result["dense"]) - expected).max() <= 1e-6


def test_hub_id_missing_from_cache_offline_is_a_clear_error(tmp_path):
    script = "from m3_integrations import M3Encoder\nM3Encoder('BAAI/bge-m3', device='cpu')\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path), "HF_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "ModelLoadError" in done.stderr and "HF_HUB_OFFLINE" in done.stderr


def test_local_directory_missing_sparse_head(tiny_model_dir, tmp_path, encoder):
    model = _copy_without(tiny_model_dir, tmp_path / "m", "sparse_linear.pt")
    enc = M3Encoder(model, device="cpu")
    with pytest.raises(ModelLoadError, match="sparse_linear.pt"):
        enc.encode(["hello"])
    dense_only = enc.encode(["hello"], return_sparse=False, return_colbert=False)
    assert dense_only.sparse is None and dense_only.colbert is None
    assert np.abs(dense_only.dense - encoder.encode(["hello"]).dense).max() <= 1e-6
    assert enc.encode(["hello"], return_sparse=False).colbert[0].shape[1] == enc.dim


def test_local_directory_missing_colbert_head(tiny_model_dir, tmp_path):
    enc = M3Encoder(_copy_without(tiny_model_dir, tmp_path / "m", "colbert_linear.pt"), device="cpu")
    with pytest.raises(ModelLoadError, match="colbert_linear.pt"):
        enc.encode(["hello"], return_sparse=False)
    assert enc.encode(["hello"], return_colbert=False).sparse is not None


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_pickle",))


def test_head_files_are_loaded_with_weights_only(tiny_model_dir, tmp_path, monkeypatch):
    model = _copy_without(tiny_model_dir, tmp_path / "m", "sparse_linear.pt")
    with open(model / "sparse_linear.pt", "wb") as f:
        pickle.dump({"weight": _Exploit()}, f)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        M3Encoder(model, device="cpu")
    assert not (tmp_path / "pwned_by_pickle").exists()


def test_head_of_the_wrong_shape_is_a_clear_error(tiny_model_dir, tmp_path):
    import torch

    model = _copy_without(tiny_model_dir, tmp_path / "m", "colbert_linear.pt")
    torch.save(torch.nn.Linear(8, 8).state_dict(), model / "colbert_linear.pt")
    with pytest.raises(ModelLoadError, match="colbert_linear.pt.*does not fit"):
        M3Encoder(model, device="cpu")


def test_no_such_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="no such directory"):
        M3Encoder(tmp_path / "nope", device="cpu")


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        M3Encoder(tmp_path, device="cpu")


def test_not_an_xlm_roberta_model(tiny_model_dir, tmp_path):
    model = _copy_without(tiny_model_dir, tmp_path / "m")
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = "bert"
    config["architectures"] = ["BertModel"]
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="xlm-roberta"):
        M3Encoder(model, device="cpu")


def test_dtype_and_device_defaults(encoder):
    import torch

    assert encoder.device.type == "cpu" and encoder.dtype == torch.float32
    with pytest.raises(ValueError, match="unknown dtype"):
        M3Encoder("/nonexistent", dtype="float8")


def test_a_load_prints_nothing_a_user_cannot_act_on(tiny_model_dir):
    """The checkpoint carries pooler weights (like BAAI/bge-m3); transformers would print a load report
    listing them as UNEXPECTED and a 'Loading weights' bar. A fresh process shows what a user sees."""
    from safetensors import safe_open

    with safe_open(tiny_model_dir / "model.safetensors", "pt") as weights:
        assert any(key.startswith("pooler.") for key in weights.keys())
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from m3_integrations import M3Encoder\n"
        f"enc = M3Encoder({str(tiny_model_dir)!r}, device='cpu')\n"
        "enc.encode(['x'])\n"
        "import transformers.utils.logging as hf\n"
        "print('verbosity', hf.get_verbosity(), 'bars', hf.is_progress_bar_enabled())\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    assert "LOAD REPORT" not in printed and "UNEXPECTED" not in printed and "Loading weights" not in printed
    # transformers' own settings are restored for the rest of the user's program
    assert done.stdout.strip().endswith("verbosity 30 bars True"), done.stdout


def test_m3_encode_prints_no_load_report(tiny_model_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    m3 = Path(sys.executable).with_name("m3")  # the installed console script
    done = subprocess.run([str(m3), "encode", "x", "--model", str(tiny_model_dir)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "x" in done.stdout and "dense" in done.stdout
    assert "LOAD REPORT" not in done.stderr and "Loading weights" not in done.stderr, done.stderr


def test_a_checkpoint_missing_backbone_weights_is_an_error(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    weights = load_file(broken / "model.safetensors")
    dropped = next(key for key in weights if "layer.1.attention" in key)
    del weights[dropped]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="lacks 1 backbone weight"):
        M3Encoder(broken, device="cpu")
