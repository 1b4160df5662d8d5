"""Shared fixtures: the tiny random BGE-M3-layout model is built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
