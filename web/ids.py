"""Row ids that arrive from users: the PostgreSQL bigint range, and a route convertor for it.

Ids in paths and JSON bodies must be checked before they reach asyncpg, which
raises on an integer outside bigint instead of finding no row. `{name:id}` in a
route path matches 1 to 18 digits (every id below 10^18), so a longer number is
a 404 like any other unknown id.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

MAX_ID = 2**63 - 1


def is_row_id(value: object) -> bool:
    """Return whether `value` is a JSON integer (not a boolean) in 1..2^63-1."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


class IdConvertor(Convertor[int]):
    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 <= value < 10**18:
            raise ValueError(f"id {value} is outside the range a route path accepts")
        return str(value)


register_url_convertor("id", IdConvertor())
