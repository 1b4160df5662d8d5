"""ColBERT token pooling (Clavié et al. 2024, arXiv 2409.14683): fewer rows per document, nearly the same MaxSim.

Each document's ColBERT rows are clustered hierarchically with Ward's method and every cluster is replaced by
the re-normalized mean of its rows, keeping ``max(n_rows // pool_factor, 1)`` rows. Ward on the unit rows
(squared Euclidean distance = 2 x cosine distance) merges first the rows whose mean loses least, which is the
error a mean-pooled row makes in MaxSim. The result equals SciPy's ``linkage(rows, "ward")`` cut with
``fcluster(..., criterion="maxclust")`` (tested), computed here as batched tensor operations: every merge step
runs on all documents of a batch at once (on the encoder's device when given), with no Python loop per token.

Pool documents only, never queries: the query side of MaxSim needs every query token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where pooling runs: the store schemas use check_pool_factor without it
    import torch

from .types import M3Output

MAX_BATCH_CELLS = 1 << 25
"""Distance-matrix cells (batch x rows x rows) pooled at once; bounds the memory of one step (128 MiB)."""


def pooled_length(n_rows: int, pool_factor: int) -> int:
    """Rows a document of ``n_rows`` ColBERT rows keeps at ``pool_factor``."""
    return n_rows if pool_factor == 1 or n_rows == 0 else max(n_rows // pool_factor, 1)


def check_pool_factor(pool_factor: object) -> int:
    """``pool_factor`` as an int >= 1, or a ``ValueError`` that names it."""
    if isinstance(pool_factor, bool) or not isinstance(pool_factor, (int, np.integer)) or pool_factor < 1:
        raise ValueError(f"colbert_pool_factor must be an int >= 1 (1 = no pooling), got {pool_factor!r}")
    return int(pool_factor)


def pool_colbert(colbert: Sequence[np.ndarray], pool_factor: int, *,
                 device: str | torch.device | None = None) -> list[np.ndarray]:
    """Pool each document's ColBERT rows; returns float32 arrays of unit rows, in the order of the input.

    Pooled rows are ordered by the first row of their cluster. ``pool_factor=1`` returns the input as is.
    Deterministic: ties are broken by row order.
    """
    pool_factor = check_pool_factor(pool_factor)
    if pool_factor == 1:
        return list(colbert)
    import torch

    device = torch.device(device) if device is not None else torch.device("cpu")
    out: list[np.ndarray | None] = [None] * len(colbert)
    lengths = [len(m) for m in colbert]
    order = sorted(range(len(colbert)), key=lambda i: lengths[i])  # similar lengths pad least
    start = 0
    while start < len(order):
        longest = lengths[order[start]]
        end = start + 1
        while end < len(order):
            longest = lengths[order[end]]
            if (end - start + 1) * longest * longest > MAX_BATCH_CELLS:
                break
            end += 1
        group = order[start:end]
        for index, pooled in zip(group, _pool_group([colbert[i] for i in group], pool_factor, device), strict=True):
            out[index] = pooled
        start = end
    return out  # type: ignore[return-value]


def pool_output(output: M3Output, pool_factor: int, *, device: str | torch.device | None = None) -> M3Output:
    """``output`` with its ColBERT rows pooled (dense and sparse unchanged)."""
    if check_pool_factor(pool_factor) == 1 or output.colbert is None:
        return output
    return M3Output(dense=output.dense, sparse=output.sparse,
                    colbert=pool_colbert(output.colbert, pool_factor, device=device))


def _pool_group(matrices: list[np.ndarray], pool_factor: int, device: torch.device) -> list[np.ndarray]:
    import torch

    batch, dim = len(matrices), matrices[0].shape[1] if matrices[0].ndim == 2 else 0
    n = max(len(m) for m in matrices)
    if n <= 1:
        return [np.asarray(m, dtype=np.float32) for m in matrices]
    padded = np.zeros((batch, n, dim), dtype=np.float32)
    for b, m in enumerate(matrices):
        padded[b, : len(m)] = m
    rows = torch.from_numpy(padded).to(device)
    counts = torch.tensor([len(m) for m in matrices], device=device)
    valid = torch.arange(n, device=device)[None, :] < counts[:, None]  # (B, n)

    # squared Euclidean distances between rows; Ward's merge cost is monotone in this after Lance-Williams
    norms = (rows * rows).sum(-1)
    dist = (norms[:, :, None] + norms[:, None, :] - 2.0 * rows @ rows.transpose(1, 2)).clamp_min_(0.0)
    inf = torch.tensor(float("inf"), device=device)
    pair_valid = valid[:, :, None] & valid[:, None, :]
    dist = torch.where(pair_valid, dist, inf)
    dist.diagonal(dim1=1, dim2=2).fill_(float("inf"))

    keep = torch.tensor([pooled_length(len(m), pool_factor) for m in matrices], device=device)
    merges = counts - keep  # merges each document needs
    sizes = valid.to(torch.float32)  # rows per cluster, indexed by the cluster's smallest row
    labels = torch.arange(n, device=device).expand(batch, n).clone()
    # each row's nearest cluster, kept up to date so that a step scans rows, not the whole matrix
    nearest, neighbour = dist.min(dim=-1)
    # Flat views and index_select / take / index_copy_ / scatter_: advanced indexing is 10-100x slower for these
    # small per-step updates on CPU (measured), and a step is a few dozen of them.
    rows_of = dist.view(batch * n, n)
    cells = dist.view(-1)
    flat_sizes = sizes.view(-1)
    columns = torch.arange(n, device=device)[None, :] * n
    threads = torch.get_num_threads()
    if device.type == "cpu":  # a step is a few dozen ops on small tensors: one thread is 2-3x faster (measured)
        torch.set_num_threads(1)
    try:
        for step in range(int(merges.max())):
            active = (merges > step).nonzero().squeeze(1)
            at = torch.arange(len(active), device=device) * n  # row starts in (active, n) tensors
            near, neigh = nearest.index_select(0, active), neighbour.index_select(0, active)
            k = near.argmin(dim=1)
            other = neigh.view(-1).take(at + k)
            i, j = torch.minimum(k, other), torch.maximum(k, other)  # j merges into i
            size_i, size_j = active * n + i, active * n + j
            ni, nj = flat_sizes.take(size_i)[:, None], flat_sizes.take(size_j)[:, None]
            nk = sizes.index_select(0, active)
            di, dj = rows_of.index_select(0, size_i), rows_of.index_select(0, size_j)
            dij = di.view(-1).take(at + j)[:, None]
            merged = ((nk + ni) * di + (nk + nj) * dj - nk * dij) / (ni + nj + nk)  # Lance-Williams
            merged = torch.where(nk > 0, merged, inf)
            merged.view(-1).index_fill_(0, torch.cat([at + i, at + j]), float("inf"))
            base = (active * n * n)[:, None] + columns
            rows_of.index_copy_(0, size_i, merged)
            cells.scatter_(0, (base + i[:, None]).view(-1), merged.view(-1))
            rows_of.index_fill_(0, size_j, float("inf"))
            cells.index_fill_(0, (base + j[:, None]).view(-1), float("inf"))
            flat_sizes.index_add_(0, size_i, flat_sizes.take(size_j))
            flat_sizes.index_fill_(0, size_j, 0.0)
            lab = labels.index_select(0, active)
            labels.index_copy_(0, active, torch.where(lab == j[:, None], i[:, None], lab))
            # nearest clusters: rows that pointed at i or j look again; the others may now prefer i
            stale = (neigh == i[:, None]) | (neigh == j[:, None])
            closer = merged < near
            near = torch.where(closer, merged, near)
            neigh = torch.where(closer, i[:, None], neigh)
            stale.view(-1).index_fill_(0, at + i, True)
            stale.view(-1).index_fill_(0, at + j, False)
            b, r = stale.nonzero(as_tuple=True)
            if len(b):
                fresh, fresh_at = rows_of.index_select(0, active.index_select(0, b) * n + r).min(dim=-1)
                near.view(-1).index_copy_(0, b * n + r, fresh)
                neigh.view(-1).index_copy_(0, b * n + r, fresh_at)
            near.view(-1).index_fill_(0, at + j, float("inf"))
            nearest.index_copy_(0, active, near)
            neighbour.index_copy_(0, active, neigh)
    finally:
        torch.set_num_threads(threads)

    # padded rows are zero, so they add nothing to the cluster they are labelled with
    sums = torch.zeros_like(rows).scatter_add_(1, labels[:, :, None].expand(-1, -1, dim), rows)
    pooled = torch.nn.functional.normalize(sums, dim=-1).cpu().numpy()
    kept = (sizes > 0).cpu().numpy()  # clusters, indexed by (so in the order of) their first row
    return [pooled[b][kept[b]] if len(m) else np.asarray(m, dtype=np.float32) for b, m in enumerate(matrices)]
