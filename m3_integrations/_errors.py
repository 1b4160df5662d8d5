"""Errors shared by the store adapters, so code that handles them works with either database."""

from __future__ import annotations


class SchemaMismatchError(ValueError):
    """An existing collection does not have the layout the adapter writes; the message says what differs and
    how to fix it (another collection name, or ``recreate=True`` to replace it)."""


class CollectionNotFoundError(LookupError, ValueError):
    """The named collection does not exist (a ``LookupError``, and a ``ValueError`` for callers that expect one)."""


class FilterError(ValueError):
    """The database could not run a filter (e.g. a native Milvus expression with a syntax error); the message
    keeps the database's own message and adds the filter text (also in ``expression``)."""

    def __init__(self, message: str, expression: str = "") -> None:
        super().__init__(message)
        self.expression = expression
