"""GPU checks: run only where CUDA is available (never needed by CI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TEXTS = ["BGE-M3 on a GPU", "Le renard brun rapide", "the", "", "hybrid retrieval " * 200]


def test_gpu_defaults_to_half_precision_and_matches_fp32_cpu(tiny_model_dir, encoder):
    from m3_integrations import M3Encoder

    gpu = M3Encoder(tiny_model_dir)
    assert gpu.device.type == "cuda" and gpu.dtype in (torch.bfloat16, torch.float16)
    out, ref = gpu.encode(TEXTS), encoder.encode(TEXTS)
    assert out.dense.dtype == np.float32
    cos = (out.dense * ref.dense).sum(axis=1)
    assert cos.min() > 0.99
    for a, b in zip(out.colbert, ref.colbert, strict=True):
        assert a.shape == b.shape and (a * b).sum(axis=1).min() > 0.98


def test_gpu_fp32_matches_cpu_closely(tiny_model_dir, encoder):
    from m3_integrations import M3Encoder

    gpu = M3Encoder(tiny_model_dir, dtype="float32")
    out, ref = gpu.encode(TEXTS), encoder.encode(TEXTS)
    assert np.abs(out.dense - ref.dense).max() < 1e-4
    assert [set(s) for s in out.sparse] == [set(s) for s in ref.sparse]


def test_varlen_flash_attention_matches_the_padded_path(tiny_model_dir):
    """On GPUs with flash attention the packed (varlen) path is on, and it agrees with the padded path."""
    from m3_integrations import M3Encoder

    gpu = M3Encoder(tiny_model_dir)
    if torch.cuda.get_device_capability()[0] >= 8:
        assert gpu._net.varlen
    padded = M3Encoder(tiny_model_dir)
    padded._net.varlen = False
    a, b = gpu.encode(TEXTS), padded.encode(TEXTS)
    assert (a.dense * b.dense).sum(axis=1).min() > 0.999
    for x, y in zip(a.colbert, b.colbert, strict=True):
        assert x.shape == y.shape and (x * y).sum(axis=1).min() > 0.99

