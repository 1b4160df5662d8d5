"""Dense + sparse fusion of a collection without ColBERT vectors (one made elsewhere), shared by both adapters.

The candidates are the union of the dense top-P and the sparse top-P; every candidate carries its exact dense and
sparse scores (the adapter looks up the side a list did not find). ``weighted``:
``(w_d * dense + w_s * sparse) / (w_d + w_s)`` (the ColBERT weight is dropped); ``rrf``: ``sum_m w_m / (k + rank_m)``
(ranks from 1); ``dbsf``: each list's scores normalized to ``(s - (mu - 3 sigma)) / (6 sigma)`` in [0, 1] and
summed (unweighted; a zero weight drops the list).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Sequence
from typing import Any

import numpy as np

from ._query import QueryPlan


def dbsf_normalize(scores: Sequence[float]) -> np.ndarray:
    """Distribution-based score normalization of one result list: ``(s - (mu - 3 sigma)) / (6 sigma)`` in [0, 1]."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return values
    mu, sigma = values.mean(), values.std()
    if sigma == 0:
        return np.full_like(values, 0.5)
    return np.clip((values - (mu - 3 * sigma)) / (6 * sigma), 0.0, 1.0)


def refuse_colbert(plan: QueryPlan, name: str) -> None:
    """A clear error for a ColBERT mode on a collection without ColBERT vectors."""
    if plan.mode == "colbert":
        raise ValueError(f"mode='colbert' needs ColBERT vectors, which collection {name!r} does not have; use "
                         "mode='hybrid' (dense + sparse), 'dense' or 'sparse'")


def fuse_dense_sparse(plan: QueryPlan, lists: dict[str, list[Hashable]], scores: dict[Hashable, dict[str, float]],
                      name: str) -> list[tuple[Hashable, float]]:
    """The best ``plan.limit`` candidates and their fused score (see the module docstring), best first."""
    w_d, w_s, _ = plan.weights
    weight = {"dense": w_d, "sparse": w_s}
    if plan.fusion == "weighted":
        if w_d + w_s <= 0:
            raise ValueError(f"weights {plan.weights} give dense and sparse no weight, and collection {name!r} has no "
                             "ColBERT vectors")
        fused = {key: (w_d * s.get("dense", 0.0) + w_s * s.get("sparse", 0.0)) / (w_d + w_s)
                 for key, s in scores.items()}
    else:
        fused = dict.fromkeys(scores, 0.0)
        for mode, keys in lists.items():
            if weight[mode] == 0:
                continue
            if plan.fusion == "rrf":
                for rank, key in enumerate(keys, start=1):
                    fused[key] += weight[mode] / (plan.rrf_k + rank)
            else:
                for key, norm in zip(keys, dbsf_normalize([scores[k][mode] for k in keys]), strict=True):
                    fused[key] += float(norm)
    order = sorted(fused, key=lambda key: (-fused[key], str(key)))[: plan.limit]
    return [(key, fused[key]) for key in order]


def gather_candidates(search: Callable[..., Generator[Any, Any, list[tuple[Any, Any, float]]]],
                      modes: list[str], prefetch_limit: int, restrict_to: Callable[[list[Any]], Any]
                      ) -> Generator[Any, Any, tuple[dict[Any, Any], dict[Any, dict[str, float]], dict[str, list]]]:
    """The dense (+ sparse) candidates of a collection made elsewhere, each with both exact scores.

    ``search(mode, limit, restriction=...)`` is a store program returning ``(id, entity, score)`` triples;
    ``restrict_to(ids)`` makes the restriction of a search to those ids. A candidate one list did not find is
    scored by a search restricted to it (sparse: 0 when it shares no token with the query). Returns the
    candidates' entities, their per-mode scores and each mode's ranked ids.
    """
    entities: dict[Any, Any] = {}
    scores: dict[Any, dict[str, float]] = {}
    lists: dict[str, list[Any]] = {}
    for mode in modes:
        found = yield from search(mode, prefetch_limit)
        lists[mode] = [key for key, _, _ in found]
        for key, entity, score in found:
            entities.setdefault(key, entity)
            scores.setdefault(key, {})[mode] = score
    for mode in ("dense", "sparse"):
        missing = [key for key in entities if mode not in scores[key]]
        if missing and mode in modes:
            for key, _, score in (yield from search(mode, len(missing), restrict_to(missing))):
                if key in scores:
                    scores[key][mode] = score
        for key in missing:
            scores[key].setdefault(mode, 0.0)
    return entities, scores, lists
