"""Shared fixtures: the tiny random BGE-M3-layout model is built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def float16_colbert_by_default():
    """Score-parity tests compare database scores with the float reference within 1e-5..2e-3. The tiny model's
    32-dim rows make the default 4-bit ColBERT codes several times coarser than at BGE-M3's 1024 dims (max
    error 0.014 vs 0.004, measured), so the suite stores float16 unless a test asks for a storage; the default's
    own fidelity is tested at full width in tests/test_qdrant_colbert_storage.py and
    tests/test_milvus_colbert_storage.py."""
    from m3_integrations.milvus import _codecs
    from m3_integrations.qdrant import _schema

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_schema, "DEFAULT_COLBERT_STORAGE", "float16")
        patch.setattr(_codecs, "DEFAULT_STORAGE", "float16")
        yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """Directory of a tiny random model with the exact BGE-M3 file layout (built offline)."""
    from m3_integrations.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-bge-m3")


@pytest.fixture(scope="session")
def encoder(tiny_model_dir):
    """One shared ``M3Encoder`` over the tiny model, on CPU in fp32."""
    from m3_integrations import M3Encoder

    return M3Encoder(tiny_model_dir, device="cpu")


class RecordingEncoder:
    """The real encoder, recording which texts it was asked to encode."""

    def __init__(self, inner) -> None:
        self.inner, self.dim, self.seen = inner, inner.dim, []

    def encode_documents(self, texts, **kwargs):
        self.seen.extend(texts)
        return self.inner.encode_documents(texts, **kwargs)


@pytest.fixture
def recording(encoder) -> RecordingEncoder:
    """The shared encoder, recording the texts each ingest encodes."""
    return RecordingEncoder(encoder)
