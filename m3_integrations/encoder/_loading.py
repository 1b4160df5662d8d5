"""Finding and loading a BGE-M3 checkpoint: a hub id (online or from the HF cache) or a local directory."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger("m3_integrations.encoder")

DEFAULT_MODEL = "BAAI/bge-m3"
SPARSE_HEAD = "sparse_linear.pt"
COLBERT_HEAD = "colbert_linear.pt"

_HUB_FILES = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
    "model.safetensors",
    SPARSE_HEAD,
    COLBERT_HEAD,
]


class ModelLoadError(RuntimeError):
    """The model could not be found or is incomplete."""


def resolve_model_dir(name_or_path: str | os.PathLike, *, revision: str | None = None,
                      cache_dir: str | None = None) -> Path:
    """Return a local directory holding the model files.

    A path that exists is used as is. Anything else is treated as a Hugging Face hub id and fetched
    with ``snapshot_download`` (which, with ``HF_HUB_OFFLINE=1``, resolves from the local cache only).
    Only the files BGE-M3 needs are fetched (no ONNX export, no images).
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"model path {str(path)!r} is a file; pass the model directory")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"model directory {str(path)!r} has no config.json: is it a BGE-M3 model directory?")
        return path
    name = str(name_or_path)
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelLoadError(f"model {name!r}: no such directory, and not a hub id of the form 'org/name'")

    from huggingface_hub import snapshot_download

    try:
        local = Path(snapshot_download(name, revision=revision, cache_dir=cache_dir, allow_patterns=_HUB_FILES))
        if not any((local / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
            # Older snapshots only carry the PyTorch pickle; transformers loads it with weights_only=True.
            local = Path(snapshot_download(name, revision=revision, cache_dir=cache_dir,
                                           allow_patterns=[*_HUB_FILES, "pytorch_model.bin"]))
    except Exception as exc:  # the hub raises many types; the user needs one clear line
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
        hint = ("HF_HUB_OFFLINE is set and the model is not in the local cache"
                if offline else "check the id, your network, or pass a local directory")
        raise ModelLoadError(f"could not load model {name!r} from the Hugging Face hub: {hint} ({exc})") from exc
    return local


def load_linear_head(model_dir: Path, filename: str, in_features: int, out_features: int) -> torch.nn.Linear:
    """Load a ``torch.nn.Linear`` state dict saved by FlagEmbedding, safely (``weights_only=True``)."""
    file = model_dir / filename
    if not file.is_file():
        raise ModelLoadError(
            f"{filename} is missing from {str(model_dir)!r}: the sparse and ColBERT outputs need the BGE-M3 heads "
            f"({SPARSE_HEAD}, {COLBERT_HEAD}). Download the full model, or ask only for dense output "
            f"(return_sparse=False, return_colbert=False)."
        )
    state = torch.load(file, map_location="cpu", weights_only=True)
    head = torch.nn.Linear(in_features, out_features)
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(f"{filename} in {str(model_dir)!r} does not fit the model: {exc}") from exc
    return head.float().eval()


# Keys a BGE-M3 checkpoint carries that the encoder does not use: the pooler of the original XLM-R
# (BGE-M3 takes the [CLS] state itself) and buffers some exports save.
_UNUSED_KEY_PREFIXES = ("pooler.", "embeddings.position_ids")


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bars for the duration (restored afterwards).

    The report lists the pooler weights every BGE-M3 checkpoint carries as ``UNEXPECTED``, and the
    ``Loading weights`` bar shows on every load; neither is something a user can act on. What matters
    (missing or unexpected backbone weights) is checked by ``load_backbone`` and reported by this package.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_backbone(model_dir: Path, dtype: torch.dtype) -> Any:
    """Load the XLM-R backbone of a BGE-M3 checkpoint quietly; a checkpoint that lacks weights is an error."""
    from transformers import XLMRobertaModel

    with quiet_transformers():
        backbone, info = XLMRobertaModel.from_pretrained(
            model_dir, add_pooling_layer=False, dtype=dtype, output_loading_info=True
        )
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise ModelLoadError(
            f"the checkpoint in {str(model_dir)!r} lacks {len(missing)} backbone weight(s) "
            f"(for example {missing[:3]}): it is not a complete BGE-M3 / XLM-R model"
        )
    unexpected = sorted(k for k in info.get("unexpected_keys") or () if not k.startswith(_UNUSED_KEY_PREFIXES))
    if unexpected:
        logger.warning("the checkpoint in %s has %d weight(s) the XLM-R backbone does not use (for example %s): "
                       "is it a BGE-M3 model?", model_dir, len(unexpected), unexpected[:3])
    return backbone
