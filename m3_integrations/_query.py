"""What every store adapter shares at query time: validating a query plan, and the ``Hit`` type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .encoder.scoring import DEFAULT_WEIGHTS, validate_weights

MODES = ("dense", "sparse", "colbert", "hybrid")
FUSIONS = ("weighted", "rrf", "dbsf")
DEFAULT_RRF_K = 60


@dataclass
class Hit:
    """One search result.

    Attributes:
        id: the user's document id (or the deterministic id derived from the text).
        score: the fused score (for ``weighted``, the reference BGE-M3 weighted score).
        text: the stored text.
        metadata: the user's metadata.
        scores: per-mode scores that were computed for this hit (``dense``, ``sparse``, ``colbert``),
            on the reference scale (ColBERT divided by the number of query tokens).
    """

    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


RESCORE_MARGIN = 5
"""The weighted hybrid scores ColBERT for ``limit + max(RESCORE_MARGIN, limit // 2)`` candidates by default."""


def default_rescore_limit(limit: int) -> int:
    """How many of the best dense + sparse candidates ColBERT re-scores by default: ``limit`` plus a margin
    (15 for 10 hits). Measured at 1k and 10k chunks of 256 rows (docs/benchmarks.md): the same top-10 as re-scoring
    every candidate in 99.7-100% of the hits, at a sixth of its cost (the re-score is what ColBERT costs; it grows
    with the candidates scored, not with the collection). ``rescore_limit="all"`` re-scores every candidate."""
    return _with_margin(limit, RESCORE_MARGIN)


def _with_margin(limit: int, margin: int) -> int:
    """``limit`` plus ``margin`` candidates, or half of ``limit`` if that is more."""
    return limit + max(margin, limit // 2)


DEFAULT_RESCORE_LIMIT = default_rescore_limit(10)
"""The default ``rescore_limit`` at the default ``limit`` of 10 hits: 15 (``default_rescore_limit``)."""


@dataclass(frozen=True)
class QueryPlan:
    """A validated search request."""

    mode: str
    fusion: str
    weights: tuple[float, float, float]
    limit: int
    prefetch_limit: int
    rrf_k: int
    rescore_limit: int | None = DEFAULT_RESCORE_LIMIT
    """ColBERT re-scores this many of the best dense + sparse candidates (weighted hybrid); ``None``: all
    (``make_plan``'s default: ``default_rescore_limit(limit)``)."""
    shortlist: int | None = None
    """On a store with a quantized ColBERT index: ColBERT scores the re-scored candidates from the quantized
    codes, and only this many, the best by that estimate, exactly from the stored rows (``None``: every
    re-scored candidate exactly, as with ``rescore_limit="all"``)."""

    @property
    def uses(self) -> tuple[str, ...]:
        """The representations the query needs from the encoder, among dense / sparse / colbert."""
        if self.mode in ("dense", "sparse"):
            return (self.mode,)
        if self.mode == "colbert":  # ColBERT re-scores the dense + sparse candidates
            return ("dense", "sparse", "colbert")
        w_d, w_s, w_c = self.weights
        # dense and sparse always form the candidate set; ColBERT only re-scores when weighted in
        needed = ["dense", "sparse"]
        if w_c > 0 or self.fusion != "weighted":
            needed.append("colbert")
        return tuple(needed)


def default_shortlist(limit: int) -> int:
    """How many candidates get their exact ColBERT score when a quantized ColBERT index picks them (a store with
    one: ``limit`` plus a margin, SHORTLIST_MARGIN)."""
    return _with_margin(limit, SHORTLIST_MARGIN)


SHORTLIST_MARGIN = 5
"""Candidates beyond ``limit`` whose ColBERT score is computed exactly after the quantized estimate."""


def first_phase_weights(w_d: float, w_s: float) -> tuple[float, float]:
    """Dense and sparse weights of the ``rescore_limit`` first phase: the plan's, or equal ones if both are 0
    (ColBERT alone is weighted, yet candidates must still be picked by something)."""
    return (w_d, w_s) if w_d or w_s else (1.0, 1.0)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


MAX_LIMIT = 100_000
"""The most results one search may ask for (Qdrant has no hard bound: this one keeps a mistyped limit from
allocating gigabytes; read a whole collection with ``get_documents`` instead)."""

MILVUS_MAX_LIMIT = 16_384
"""Milvus' search window: ``limit`` (top-k) can be at most 16,384."""


def _bounded(name: str, value: Any, max_limit: int, engine: str) -> int:
    value = _positive_int(name, value)
    if value > max_limit:
        raise ValueError(f"{name}={value} is above {max_limit:,}, the most results {engine} returns from one search; "
                         "ask for fewer (to read a whole collection, use get_documents)")
    return value


def make_plan(
    mode: str = "hybrid",
    fusion: str = "weighted",
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    limit: int = 10,
    prefetch_limit: int = 100,
    rrf_k: int = DEFAULT_RRF_K,
    rescore_limit: int | str | None = None,
    *,
    max_limit: int = MAX_LIMIT,
    engine: str = "Qdrant",
) -> QueryPlan:
    """Validate the search knobs shared by every store; raises ``ValueError``/``TypeError`` naming the problem.

    ``rescore_limit`` (weighted hybrid with a ColBERT weight): only the best ``rescore_limit`` candidates by
    their weighted dense + sparse score are re-scored by ColBERT and fused; ``None``:
    ``default_rescore_limit(limit)`` (15 for 10 hits); ``"all"``: every candidate (the plan's ``rescore_limit`` is
    then ``None``).
    ``limit``, ``prefetch_limit`` and ``rescore_limit`` may not exceed ``max_limit``, the most results
    ``engine`` returns from one search (``MAX_LIMIT``; ``MILVUS_MAX_LIMIT`` for Milvus).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}; got {fusion!r}")
    limit = _bounded("limit", limit, max_limit, engine)
    prefetch_limit = _bounded("prefetch_limit", prefetch_limit, max_limit, engine)
    rrf_k = _positive_int("rrf_k", rrf_k)
    if rescore_limit is None:
        rescore_limit = min(default_rescore_limit(limit), max_limit)
    shortlist: int | None = min(default_shortlist(limit), max_limit)
    if rescore_limit == "all":
        rescore_limit = shortlist = None
    elif isinstance(rescore_limit, str):
        raise ValueError(f"rescore_limit must be a positive int or 'all', got {rescore_limit!r}")
    else:
        rescore_limit = max(_bounded("rescore_limit", rescore_limit, max_limit, engine), limit)
    return QueryPlan(mode=mode, fusion=fusion, weights=validate_weights(weights), limit=limit,
                     prefetch_limit=max(prefetch_limit, limit), rrf_k=rrf_k, rescore_limit=rescore_limit,
                     shortlist=shortlist)


# ------------------------------------------------------------------------------------------ filters
FILTER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")


@dataclass(frozen=True)
class Condition:
    """A condition on one user-metadata field, e.g. ``Condition("lang", "eq", "en")``.

    ``op`` is one of ``eq ne gt gte lt lte in nin``; ``in``/``nin`` take a list of values.
    Each store adapter translates it to its database's native filter.
    """

    key: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in FILTER_OPS:
            raise ValueError(f"filter operator must be one of {', '.join(FILTER_OPS)}; got {self.op!r}")
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"filter key must be a non-empty string, got {self.key!r}")
        if self.op in ("in", "nin") and not isinstance(self.value, (list, tuple, set, frozenset)):
            raise ValueError(f"filter operator {self.op!r} needs a list of values, got {self.value!r}")


@dataclass(frozen=True)
class AllOf:
    """All of the conditions hold (AND)."""

    conditions: tuple[Any, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one of the conditions holds (OR)."""

    conditions: tuple[Any, ...]


MetadataFilter = Condition | AllOf | AnyOf
"""A database-neutral filter over user metadata; adapters also accept their native filter objects."""
