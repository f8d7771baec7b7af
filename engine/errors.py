"""The domain's error type: a stable code the web layer maps to a status and a message."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request the domain rejects; nothing was changed.

    `code` is stable (API clients and message catalogs key on it); `detail` holds
    values the message may show, such as the minimum next bid.
    """

    def __init__(self, code: str, message: str = "", **detail: Any) -> None:
        super().__init__(message or code)
        self.code = code
        self.detail = detail
