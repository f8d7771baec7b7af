"""Reading a lot's settings from a JSON body or a form into a `LotDraft`.

Amounts follow the bid rules (plain ASCII digits or a JSON integer, no floats or
booleans). Times are ISO 8601; a time without an offset (what a datetime-local
input sends) is read as Korea time. Errors are collected per field, so the
supplier form can show each one next to its field and the API can name the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.auction.lots import LotDraft
from engine.auction.rules import DEFAULT_INCREMENTS, InvalidAmount, parse_amount_won
from web.i18n import KST
from web.ids import is_row_id

SMALL_INT_MAX = 1_000_000_000


@dataclass
class LotInput:
    """Parsed settings, or `errors` (field -> (code, detail)) when some are invalid."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def draft(self) -> LotDraft:
        if self.errors:
            raise ValueError(f"lot input has errors in {sorted(self.errors)}")
        return LotDraft(**self.values)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _int(value: object) -> int:
    """Parse a whole number from a JSON integer or a digit string; raise ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    raise ValueError(f"not a whole number: {value!r:.40}")


def parse_datetime(value: object) -> datetime:
    """Parse ISO 8601 text into an aware datetime; text without an offset is Korea time."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("missing")
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=KST)
    return moment


def parse_increments(value: object) -> list[tuple[int, int]]:
    """Parse increment bands from [[from_won, step_won], ...] or text "0:100, 10000:500"."""
    if isinstance(value, str):
        pairs: list[Any] = [part.split(":") for part in value.replace("\n", ",").split(",") if part.strip()]
    elif isinstance(value, list):
        pairs = value
    else:
        raise ValueError("increments must be a list of [from_won, step_won] pairs")
    bands = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError("each band is [from_won, step_won]")
        bands.append((_int(pair[0]), _int(pair[1])))
    return bands


def read_lot_input(data: Mapping[str, Any]) -> LotInput:
    result = LotInput()

    def fail(name: str, code: str = "invalid_field", **detail: Any) -> None:
        result.errors.setdefault(name, (code, {"field": name, **detail}))

    try:
        product_id = _int(data.get("product_id"))
    except ValueError:
        fail("product_id")
    else:
        if is_row_id(product_id):
            result.values["product_id"] = product_id
        else:
            fail("product_id")

    title = data.get("title")
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= 120:
        fail("title", "invalid_title")
    else:
        result.values["title"] = title.strip()

    for name, required in (("start_price_won", True), ("reserve_won", False), ("buy_now_won", False)):
        raw = data.get(name)
        if _blank(raw) and not required:
            result.values[name] = None
            continue
        try:
            result.values[name] = parse_amount_won(raw if not isinstance(raw, str) else raw.strip())  # type: ignore[arg-type]
        except InvalidAmount:
            fail(name, "invalid_amount")

    for name, default in (("quantity", 1), ("soft_close_window_s", 120), ("extension_s", 120)):
        raw = data.get(name)
        if _blank(raw):
            result.values[name] = default
            continue
        try:
            number = _int(raw)
        except ValueError:
            fail(name, "invalid_quantity" if name == "quantity" else "invalid_soft_close")
            continue
        if number > SMALL_INT_MAX:
            fail(name, "invalid_quantity" if name == "quantity" else "invalid_soft_close")
            continue
        result.values[name] = number

    for name, required in (("start_at", True), ("end_at", True), ("hard_cap_at", False)):
        raw = data.get(name)
        if _blank(raw) and not required:
            result.values[name] = None
            continue
        try:
            result.values[name] = parse_datetime(raw)
        except (ValueError, TypeError):
            fail(name, "invalid_datetime")

    raw_increments = data.get("increments")
    if _blank(raw_increments):
        result.values["increments"] = list(DEFAULT_INCREMENTS)
    else:
        try:
            result.values["increments"] = parse_increments(raw_increments)
        except (ValueError, TypeError):
            fail("increments", "invalid_increments")
    return result
