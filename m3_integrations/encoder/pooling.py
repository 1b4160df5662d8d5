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
    rows = torch.zeros(batch, n, dim, dtype=torch.float32, device=device)
    counts = torch.tensor([len(m) for m in matrices], device=device)
    for b, m in enumerate(matrices):
        if len(m):
            rows[b, : len(m)] = torch.as_tensor(np.asarray(m, dtype=np.float32), device=device)
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
    rows_of = dist.view(batch * n, n)  # flat views: 1-D indexing is much faster than mixed 3-D indexing
    cells = dist.view(-1)
    columns = torch.arange(n, device=device)[None, :] * n
    for step in range(int(merges.max())):
        active = (merges > step).nonzero().squeeze(1)
        a = torch.arange(len(active), device=device)
        k = nearest[active].argmin(dim=1)
        other = neighbour[active, k]
        i, j = torch.minimum(k, other), torch.maximum(k, other)  # j merges into i
        ni, nj, nk = sizes[active, i][:, None], sizes[active, j][:, None], sizes[active]
        row_i, row_j = active * n + i, active * n + j
        di, dj = rows_of[row_i], rows_of[row_j]
        merged = ((nk + ni) * di + (nk + nj) * dj - nk * di[a, j][:, None]) / (ni + nj + nk)  # Lance-Williams
        merged = torch.where(nk > 0, merged, inf)
        merged[a, i] = inf
        merged[a, j] = inf
        base = (active * n * n)[:, None] + columns
        rows_of[row_i] = merged
        cells[base + i[:, None]] = merged
        rows_of[row_j] = inf
        cells[base + j[:, None]] = inf
        sizes[active, i] += sizes[active, j]
        sizes[active, j] = 0.0
        labels[active] = torch.where(labels[active] == j[:, None], i[:, None], labels[active])
        # nearest clusters: rows that pointed at i or j look again; the others may now prefer i
        near, neigh = nearest[active], neighbour[active]
        stale = (neigh == i[:, None]) | (neigh == j[:, None])
        closer = merged < near
        near = torch.where(closer, merged, near)
        neigh = torch.where(closer, i[:, None], neigh)
        stale[a, i] = True
        stale[a, j] = False
        b, r = stale.nonzero(as_tuple=True)
        if len(b):
            near[b, r], neigh[b, r] = rows_of[active[b] * n + r].min(dim=-1)
        near[a, j] = inf
        nearest[active], neighbour[active] = near, neigh

    sums = torch.zeros_like(rows).scatter_add_(1, labels[:, :, None].expand(-1, -1, dim), rows * valid[..., None])
    pooled = torch.nn.functional.normalize(sums, dim=-1)
    result = []
    for b, m in enumerate(matrices):
        kept = (sizes[b] > 0).nonzero().squeeze(1)  # clusters, in the order of their first row
        result.append(pooled[b, kept].cpu().numpy() if len(m) else np.asarray(m, dtype=np.float32))
    return result
