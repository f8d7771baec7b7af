"""Reading a campaign's settings from a JSON body or the staff form into a `CampaignDraft`.

Prices follow the bid rules (a JSON integer or plain ASCII digits), unit counts
too. Tiers are `[[min_units, unit_price_won], ...]` or the text "10:9000, 50:8000".
Times are ISO 8601, and a time without an offset (what a datetime-local input
sends) is Korea time. Errors are collected per field, so the staff form can show
each one next to its field and the API can name the field. The engine checks
the rules between fields (tiers against the list price and the cap, the minimum
against the cap, the deadline against PostgreSQL's clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.auction.rules import InvalidAmount, parse_amount_won
from engine.groupbuy.campaigns import FULFILMENTS, PAYMENT_TIMINGS, CampaignDraft
from engine.groupbuy.rules import MAX_UNITS
from web.live.lot_input import parse_datetime

MAX_TIERS = 20
TRUE_WORDS = ("1", "true", "on", "yes")

# Engine error codes shown under another code on the web: the engine's shared
# codes carry auction or pledge wording.
WEB_CODES = {"duration_too_long": "campaign_too_long", "invalid_units": "invalid_unit_count"}
# The form field each engine error of a draft is shown next to.
ERROR_FIELDS = {
    "invalid_title": "title", "invalid_unit_label": "unit_label", "invalid_amount": "list_price_won",
    "min_above_cap": "min_total_units", "min_buyers_above_cap": "min_buyers", "invalid_min_buyers": "min_buyers",
    "invalid_member_limit": "per_member_limit", "deadline_before_start": "deadline_at",
    "deadline_in_past": "deadline_at", "duration_too_long": "deadline_at", "invalid_fulfilment": "fulfilment",
    "invalid_fulfilment_terms": "fulfilment_terms", "invalid_payment_timing": "payment_timing",
    "invalid_payment_due": "payment_due_s", "invalid_hold": "hold_s", "product_not_found": "product_id",
    "product_not_approved": "product_id", "supplier_not_approved": "product_id",
}


@dataclass
class CampaignInput:
    """Parsed settings, or `errors` (field -> (code, detail)) when some are invalid."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def draft(self) -> CampaignDraft:
        if self.errors:
            raise ValueError(f"campaign input has errors in {sorted(self.errors)}")
        return CampaignDraft(**self.values)


def web_code(code: str) -> str:
    """Return the error code the web shows for an engine code of a campaign draft."""
    return WEB_CODES.get(code, code)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _whole(value: object, low: int, high: int) -> int:
    """Parse a whole number in low..high from a JSON integer or ASCII digits; raise ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 12:
            raise ValueError(f"not a whole number: {value!r:.40}")
        value = int(text)
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"not a whole number from {low} to {high}: {value!r:.40}")
    return value


def parse_tiers(value: object) -> list[tuple[int, int]]:
    """Parse tiers from [[min_units, unit_price_won], ...] or text "10:9000, 50:8000"; raise ValueError."""
    if isinstance(value, str):
        pairs: list[Any] = [part.split(":") for part in value.replace("\n", ",").split(",") if part.strip()]
    elif isinstance(value, list):
        pairs = value
    else:
        raise ValueError("tiers must be a list of [min_units, unit_price_won] pairs")
    if len(pairs) > MAX_TIERS:
        raise ValueError(f"at most {MAX_TIERS} tiers")
    tiers = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError("each tier is [min_units, unit_price_won]")
        tiers.append((_whole(pair[0], 0, MAX_UNITS), parse_amount_won(_stripped(pair[1]))))
    return tiers


def _stripped(value: object) -> Any:
    return value.strip() if isinstance(value, str) else value


def _flag(value: object) -> bool:
    """Read a switch: a JSON boolean, or a form checkbox (present and "on")."""
    if isinstance(value, bool):
        return value
    if _blank(value):
        return False
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS:
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"not a switch: {value!r:.40}")


def read_campaign_input(data: Mapping[str, Any]) -> CampaignInput:
    result = CampaignInput()

    def fail(name: str, code: str = "invalid_field", **detail: Any) -> None:
        result.errors.setdefault(name, (code, {"field": name, **detail}))

    try:
        result.values["product_id"] = _whole(data.get("product_id"), 1, 2**62)
    except ValueError:
        fail("product_id")

    title = data.get("title")
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= 120:
        fail("title", "invalid_title")
    else:
        result.values["title"] = title.strip()

    unit_label = data.get("unit_label")
    if _blank(unit_label):
        result.values["unit_label"] = ""
    elif not isinstance(unit_label, str) or len(unit_label.strip()) > 40:
        fail("unit_label", "invalid_unit_label")
    else:
        result.values["unit_label"] = unit_label.strip()

    try:
        result.values["list_price_won"] = parse_amount_won(_stripped(data.get("list_price_won")))
    except InvalidAmount:
        fail("list_price_won", "invalid_amount")

    try:
        result.values["tiers"] = parse_tiers(data.get("tiers"))
    except (ValueError, TypeError, InvalidAmount):
        fail("tiers", "invalid_tiers")

    for name, code in (("min_total_units", "invalid_unit_count"), ("stock_cap_units", "invalid_unit_count"),
                       ("per_member_limit", "invalid_member_limit")):
        try:
            result.values[name] = _whole(data.get(name), 1, MAX_UNITS)
        except ValueError:
            fail(name, code)

    raw_buyers = data.get("min_buyers")
    if _blank(raw_buyers):
        result.values["min_buyers"] = None
    else:
        try:
            result.values["min_buyers"] = _whole(raw_buyers, 1, MAX_UNITS)
        except ValueError:
            fail("min_buyers", "invalid_min_buyers")

    for name in ("start_at", "deadline_at"):
        try:
            result.values[name] = parse_datetime(data.get(name))
        except (ValueError, TypeError):
            fail(name, "invalid_datetime")

    try:
        result.values["close_when_sold_out"] = _flag(data.get("close_when_sold_out"))
    except ValueError:
        fail("close_when_sold_out")

    fulfilment = data.get("fulfilment") or "delivery"
    if fulfilment not in FULFILMENTS:
        fail("fulfilment", "invalid_fulfilment")
    else:
        result.values["fulfilment"] = fulfilment
    terms = data.get("fulfilment_terms")
    if _blank(terms):
        result.values["fulfilment_terms"] = ""
    elif not isinstance(terms, str) or len(terms.strip()) > 2000:
        fail("fulfilment_terms", "invalid_fulfilment_terms")
    else:
        result.values["fulfilment_terms"] = terms.strip()

    timing = data.get("payment_timing") or "after_success"
    if timing not in PAYMENT_TIMINGS:
        fail("payment_timing", "invalid_payment_timing")
    else:
        result.values["payment_timing"] = timing

    for name, code, default in (("payment_due_s", "invalid_payment_due", 172_800), ("hold_s", "invalid_hold", 86_400)):
        raw = data.get(name)
        if _blank(raw):
            result.values[name] = default
            continue
        try:
            # The engine checks the range; this only rejects what is not a whole number.
            result.values[name] = _whole(raw, 0, 10**9)
        except ValueError:
            fail(name, code)
    return result
