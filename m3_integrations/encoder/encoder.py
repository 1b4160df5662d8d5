"""``M3Encoder``: BGE-M3's dense, sparse and ColBERT outputs from one forward pass."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._text import check_texts
from ._batcher import plan_batches
from ._cache import OutputCache
from ._loading import (
    COLBERT_HEAD,
    DEFAULT_MODEL,
    SPARSE_HEAD,
    ModelLoadError,
    load_backbone,
    load_linear_head,
    resolve_model_dir,
)
from ._model import PackedXLMRoberta
from ._variants import EncodeVariants
from .types import M3Output

logger = logging.getLogger(__name__)

# On CPU a batch of 2048 tokens keeps every activation at or below 32 MiB (the FFN's: 2048 x 4096 fp32), the size up
# to which glibc's mmap threshold adapts: freed activations are then mostly reused from the heap instead of coming
# back as fresh, zero-filled pages on every layer (page faults per encode fell from ~1M to ~0.3M, measured), the
# working set is closer to the caches, and the GEMMs still run at full speed (M = 2048). See docs/benchmarks.md,
# section 1, for the measurement on a 2-core EPYC.
CPU_BATCH_TOKENS = 2048

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


@dataclass
class EncoderStats:
    """Counters of the work an encoder did (useful to check that a pipeline runs the model once)."""

    forward_passes: int = 0
    texts: int = 0
    tokens: int = 0


def _pick_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32  # bf16/fp16 matmuls are far slower than fp32 on most CPUs
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}") from None


class M3Encoder(EncodeVariants):
    """BGE-M3 encoder: one forward pass gives dense, sparse (lexical) and ColBERT representations.

    Numerically the reference ``FlagEmbedding.BGEM3FlagModel`` (fp32), but it batches length-sorted
    texts by a token budget, runs the transformer on unpadded tokens and post-processes all three
    outputs vectorized on the device.

    Args:
        model_name_or_path: hub id (default ``"BAAI/bge-m3"``; honours ``HF_HUB_OFFLINE``) or a local
            directory with the BGE-M3 layout (config, weights, tokenizer, ``sparse_linear.pt``,
            ``colbert_linear.pt``).
        device: ``None`` picks CUDA when available, else CPU.
        dtype: ``None`` picks bf16 (fp16 where bf16 is unsupported) on GPU and fp32 on CPU.
        max_batch_tokens: padded tokens per forward pass (memory follows this, not the text count);
            default 2048 on CPU (``CPU_BATCH_TOKENS``), 32768 on GPU.
        max_batch_size: most texts per forward pass.
        query_max_length: default truncation length of ``encode_queries``.
        document_max_length: default truncation length of ``encode`` and ``encode_documents``.
        revision, cache_dir: passed to the hub download.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike = DEFAULT_MODEL,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_batch_tokens: int | None = None,
        max_batch_size: int = 256,
        query_max_length: int = 512,
        document_max_length: int = 8192,
        revision: str | None = None,
        cache_dir: str | None = None,
    ) -> None:
        from transformers import AutoConfig, AutoTokenizer

        self.model_name = str(model_name_or_path)
        self.device = _pick_device(device)
        self.dtype = _pick_dtype(dtype, self.device)
        self.model_dir: Path = resolve_model_dir(model_name_or_path, revision=revision, cache_dir=cache_dir)
        config = AutoConfig.from_pretrained(self.model_dir)
        if config.model_type != "xlm-roberta":
            raise ModelLoadError(
                f"{self.model_name!r} is a {config.model_type!r} model; M3Encoder needs BGE-M3 (xlm-roberta)"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        backbone = load_backbone(self.model_dir, self.dtype)
        backbone = backbone.to(self.device).eval()
        self._net = PackedXLMRoberta(backbone, pad_layers=self.device.type == "cuda")
        self._net.enable_varlen()  # GPU: packed tokens through flash attention, when available
        del backbone
        self.dim: int = config.hidden_size
        self.vocab_size: int = config.vocab_size
        self.max_length: int = self._net.max_positions
        self._sparse_head = self._optional_head(SPARSE_HEAD, 1)
        self._colbert_head = self._optional_head(COLBERT_HEAD, self.dim)
        tok = self.tokenizer
        specials = {tok.cls_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id} - {None}
        self._special_ids = torch.zeros(self.vocab_size, dtype=torch.bool, device=self.device)
        self._special_ids[list(specials)] = True
        self._eos_id = tok.eos_token_id
        self._backend = tok.backend_tokenizer
        self._backend.no_truncation()
        self._backend.no_padding()
        self.max_batch_tokens = max_batch_tokens or (32768 if self.device.type == "cuda" else CPU_BATCH_TOKENS)
        self.max_batch_size = max_batch_size
        self.query_max_length = self._check_max_length(query_max_length)
        self.document_max_length = self._check_max_length(document_max_length)
        self.stats = EncoderStats()
        self._lock = threading.Lock()
        self._warned_truncation = False
        self._cache: OutputCache | None = None

    def _optional_head(self, filename: str, out_features: int) -> torch.nn.Linear | None:
        if not (self.model_dir / filename).is_file():
            logger.warning("%s not found in %s: only dense output is available", filename, self.model_dir)
            return None
        return load_linear_head(self.model_dir, filename, self.dim, out_features).to(self.device)

    def __repr__(self) -> str:
        return f"M3Encoder({self.model_name!r}, device={str(self.device)!r}, dtype={str(self.dtype)!r})"

    # ----------------------------------------------------------------------------------------- inputs
    def _check_max_length(self, max_length: int) -> int:
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise TypeError(f"max_length must be an int, got {max_length!r}")
        if not 2 <= max_length <= self.max_length:
            raise ValueError(
                f"max_length must be between 2 and {self.max_length} (the model's limit), got {max_length}"
            )
        return max_length

    def tokenize(self, texts: str | Iterable[str]) -> list[list[int]]:
        """Token ids of each text with ``<s>``/``</s>``, untruncated."""
        texts = check_texts(texts)
        return [e.ids for e in self._backend.encode_batch(texts)] if texts else []

    def count_tokens(self, texts: str | Iterable[str]) -> list[int]:
        """Number of tokens of each text, special tokens included, untruncated."""
        return [len(ids) for ids in self.tokenize(texts)]

    def _truncate(self, token_ids: list[list[int]], max_length: int) -> list[list[int]]:
        out = []
        longest = 0
        for ids in token_ids:
            if len(ids) > max_length:
                longest = max(longest, len(ids))
                ids = ids[: max_length - 1] + [self._eos_id]
            out.append(ids)
        if longest and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"texts longer than max_length={max_length} tokens (up to {longest}) were truncated; "
                "split long documents into chunks to keep all their content (warned once per encoder)",
                UserWarning, stacklevel=3,
            )
        return out

    # ----------------------------------------------------------------------------------------- encode
    def encode(
        self,
        texts: str | Iterable[str],
        max_length: int | None = None,
        return_dense: bool = True,
        return_sparse: bool = True,
        return_colbert: bool = True,
    ) -> M3Output:
        """Encode texts; returns the asked-for representations in input order.

        Texts over ``max_length`` tokens (default ``document_max_length``) are truncated as the
        reference does, with a one-time warning. A single string is taken as a batch of one.
        """
        texts = check_texts(texts)
        max_length = self._check_max_length(self.document_max_length if max_length is None else max_length)
        if not (return_dense or return_sparse or return_colbert):
            raise ValueError("ask for at least one of return_dense, return_sparse, return_colbert")
        for wanted, head, name in ((return_sparse, self._sparse_head, SPARSE_HEAD),
                                   (return_colbert, self._colbert_head, COLBERT_HEAD)):
            if wanted and head is None:
                raise ModelLoadError(
                    f"{name} is missing from {str(self.model_dir)!r}, so this model cannot give "
                    f"{'sparse' if name == SPARSE_HEAD else 'ColBERT'} output; download the full BGE-M3 "
                    "directory or pass return_sparse=False, return_colbert=False"
                )
        if self._cache is not None:
            return self._encode_cached(texts, max_length, return_dense, return_sparse, return_colbert)
        return self._encode_uncached(texts, max_length, return_dense, return_sparse, return_colbert)

    def _encode_cached(self, texts, max_length, return_dense, return_sparse, return_colbert) -> M3Output:
        cache = self._cache
        found = {t: cache.get((t, max_length)) for t in dict.fromkeys(texts)}
        missing = [t for t, out in found.items() if out is None]
        if missing:
            fresh = self._encode_uncached(missing, max_length, True, self._sparse_head is not None,
                                          self._colbert_head is not None)
            for i, text in enumerate(missing):
                found[text] = fresh[i]
                cache.put((text, max_length), fresh[i])
        rows = [found[t] for t in texts]
        return M3Output(
            dense=np.concatenate([r.dense for r in rows]) if return_dense and rows else (
                np.zeros((0, self.dim), np.float32) if return_dense else None),
            sparse=[r.sparse[0] for r in rows] if return_sparse else None,
            colbert=[r.colbert[0] for r in rows] if return_colbert else None,
        )

    def _encode_uncached(self, texts, max_length, return_dense, return_sparse, return_colbert) -> M3Output:
        token_ids = self._truncate(self.tokenize(texts), max_length)
        n = len(token_ids)
        dense = np.zeros((n, self.dim), dtype=np.float32) if return_dense else None
        sparse: list | None = [None] * n if return_sparse else None
        colbert: list | None = [None] * n if return_colbert else None
        lengths = [len(ids) for ids in token_ids]

        def collect(batch: list[int], pending: _Pending) -> None:
            d, s, c = pending.collect()
            if d is not None:
                dense[batch] = d
            for pos, i in enumerate(batch):
                if s is not None:
                    sparse[i] = s[pos]
                if c is not None:
                    colbert[i] = c[pos]

        # a pipeline on GPU: batch k's forward pass is queued before batch k-1's outputs are copied into
        # numpy arrays, so the host copies overlap the device's work
        previous: tuple[list[int], _Pending] | None = None
        for batch in plan_batches(lengths, self.max_batch_tokens, self.max_batch_size):
            with self._lock:
                batch_ids = [token_ids[i] for i in batch]
                hidden, input_ids, lens = self._forward(batch_ids)
                if previous is not None:
                    collect(*previous)
                pending = self._heads(hidden, input_ids, lens, [len(ids) for ids in batch_ids], return_dense,
                                      return_sparse, return_colbert)
                previous = (batch, pending)
        if previous is not None:
            collect(*previous)
        return M3Output(dense=dense, sparse=sparse, colbert=colbert)

    # -------------------------------------------------------------------------------------- internals
    @torch.inference_mode()
    def _forward(self, batch_ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queue one batch's forward pass (no wait on the device)."""
        lengths = [len(ids) for ids in batch_ids]
        input_ids = _to_device(torch.tensor([t for ids in batch_ids for t in ids], dtype=torch.long), self.device)
        lens = _to_device(torch.tensor(lengths), self.device)
        hidden = self._net.forward(input_ids, lengths, lens)
        self.stats.forward_passes += 1
        self.stats.texts += len(lengths)
        self.stats.tokens += int(input_ids.numel())
        return hidden, input_ids, lens

    @torch.inference_mode()
    def _heads(self, hidden: torch.Tensor, input_ids: torch.Tensor, lens: torch.Tensor, lengths: list[int],
               want_dense: bool, want_sparse: bool, want_colbert: bool) -> _Pending:
        """Queue the heads of one batch and the copies of their outputs to the host."""
        starts = torch.cumsum(lens, 0) - lens
        pending = _Pending([n - 1 for n in lengths])
        if want_dense:
            pending.dense = _to_host(F.normalize(hidden[starts].float(), dim=-1))
        if want_sparse:
            pending.sparse = self._sparse(hidden, input_ids, lens)
        if want_colbert:
            not_cls = torch.ones(hidden.shape[0], dtype=torch.bool, device=self.device)
            not_cls[starts] = False
            pending.colbert = _to_host(F.normalize(self._colbert_head(hidden[not_cls].float()), dim=-1))
        if self.device.type == "cuda":
            pending.done = torch.cuda.Event()
            pending.done.record()
        return pending

    def _sparse(self, hidden: torch.Tensor, input_ids: torch.Tensor, lens: torch.Tensor):
        """Max weight per (text, token id), specials and zeros dropped, with no vocab-sized tensor."""
        weights = torch.relu(self._sparse_head(hidden.float())).squeeze(-1)
        seq_of_token = torch.repeat_interleave(torch.arange(lens.numel(), device=hidden.device), lens)
        keep = (weights > 0) & ~self._special_ids[input_ids]
        keys = seq_of_token[keep] * self.vocab_size + input_ids[keep]
        unique_keys, inverse = torch.unique(keys, return_inverse=True)
        best = torch.zeros(unique_keys.numel(), dtype=weights.dtype, device=weights.device)
        best = best.scatter_reduce(0, inverse, weights[keep], reduce="amax", include_self=False)
        seq_counts = torch.bincount(unique_keys // self.vocab_size, minlength=lens.numel())
        return _to_host(seq_counts), _to_host(unique_keys % self.vocab_size), _to_host(best)


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``, copied from page-locked memory so that the copy waits for nothing."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def _to_host(tensor: torch.Tensor) -> torch.Tensor:
    """Queue a copy of ``tensor`` into page-locked host memory (CPU tensors pass through).

    A device-to-host copy into ordinary (pageable) memory ran at ~1.2 GB/s on an H100 machine, ~45x
    slower than into page-locked memory (measured), and it blocks; this one is asynchronous and fast.
    """
    if tensor.device.type != "cuda":
        return tensor
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    return host


class _Pending:
    """One batch's outputs on their way to the host; ``collect`` waits for them and builds the numpy /
    Python values (ColBERT rows are copied out of the page-locked buffers, which are then reused)."""

    def __init__(self, colbert_counts: list[int]) -> None:
        self.colbert_counts = colbert_counts
        self.dense: torch.Tensor | None = None
        self.sparse: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.colbert: torch.Tensor | None = None
        self.done: torch.cuda.Event | None = None

    def collect(self) -> tuple[np.ndarray | None, list[dict[int, float]] | None, list[np.ndarray] | None]:
        if self.done is not None:
            self.done.synchronize()
        dense = None if self.dense is None else self.dense.numpy().copy()
        sparse = None
        if self.sparse is not None:
            seq_counts, token_ids, weights = (t.tolist() for t in self.sparse)
            ends = np.cumsum(seq_counts)
            sparse = [dict(zip(token_ids[e - c:e], weights[e - c:e], strict=True))
                      for c, e in zip(seq_counts, ends, strict=True)]
        colbert = None
        if self.colbert is not None:
            rows = self.colbert.numpy()
            if self.done is not None:
                rows = rows.copy()  # out of the page-locked buffer
            colbert = np.split(rows, np.cumsum(self.colbert_counts)[:-1])
        return dense, sparse, colbert
