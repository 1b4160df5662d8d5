"""The optional API key: ``Authorization: Bearer <key>``, compared in constant time."""

from __future__ import annotations

import hmac


class BearerAuth:
    """Checks the ``Authorization`` header against one API key (or lets everything through without one)."""

    def __init__(self, api_key: str | None) -> None:
        if api_key is not None and not api_key.strip():
            raise ValueError("the API key is empty: set a non-empty key or none at all")
        self._key = None if api_key is None else api_key.encode("utf-8")

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def check(self, authorization: str | None) -> str | None:
        """``None`` when the header carries the key, else the reason it is refused (never echoing a key)."""
        if self._key is None:
            return None
        if not authorization:
            return "missing API key: send the header 'Authorization: Bearer <key>'"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "malformed Authorization header: expected 'Bearer <key>'"
        # compare_digest takes time independent of where the first difference is
        if not hmac.compare_digest(token.strip().encode("utf-8"), self._key):
            return "invalid API key"
        return None
