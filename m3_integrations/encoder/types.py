"""The one output type that flows from the encoder through every store and framework adapter."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

SparseVector = dict[int, float]
"""Lexical weights of one text: token id -> weight (only positive weights, no special tokens)."""


@dataclass
class M3Output:
    """Dense, sparse and ColBERT representations of a batch of texts, in input order.

    A field is ``None`` when it was not asked for.

    Attributes:
        dense: float32 array ``[n, dim]``, rows L2-normalized.
        sparse: one ``{token_id: weight}`` dict per text (int keys, as vector databases want them).
        colbert: one float32 array ``[tokens_i, dim]`` per text, rows L2-normalized
            (CLS dropped, final ``</s>`` kept, exactly as the reference).
    """

    dense: np.ndarray | None = None
    sparse: list[SparseVector] | None = None
    colbert: list[np.ndarray] | None = None

    def __len__(self) -> int:
        for field in (self.dense, self.sparse, self.colbert):
            if field is not None:
                return len(field)
        return 0

    def __getitem__(self, index: int | slice | Sequence[int]) -> M3Output:
        """Select rows; always returns an ``M3Output`` (use ``.dense[0]`` etc. for one row)."""
        if isinstance(index, int):
            rows: list[int] | slice = [index]
        elif isinstance(index, slice):
            rows = index
        else:
            rows = list(index)

        def pick(field):
            if field is None:
                return None
            if isinstance(field, np.ndarray):
                return field[rows]
            if isinstance(rows, slice):
                return field[rows]
            return [field[i] for i in rows]

        return M3Output(dense=pick(self.dense), sparse=pick(self.sparse), colbert=pick(self.colbert))

    def __iter__(self) -> Iterator[M3Output]:
        for i in range(len(self)):
            yield self[i]

    @classmethod
    def concat(cls, outputs: Sequence[M3Output]) -> M3Output:
        """Concatenate several outputs (same fields present in each) into one."""
        if not outputs:
            return cls()
        first = outputs[0]
        dense = None
        if first.dense is not None:
            dense = np.concatenate([o.dense for o in outputs], axis=0)
        sparse = None if first.sparse is None else [s for o in outputs for s in o.sparse]
        colbert = None if first.colbert is None else [c for o in outputs for c in o.colbert]
        return cls(dense=dense, sparse=sparse, colbert=colbert)

    @staticmethod
    def sparse_to_arrays(weights: SparseVector) -> tuple[list[int], list[float]]:
        """Split one sparse dict into sorted ``(indices, values)`` lists, the form vector DBs take."""
        indices = sorted(weights)
        return indices, [float(weights[i]) for i in indices]
