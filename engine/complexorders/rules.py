"""The plain rules of complex orders, free of I/O: input checks, masking, sorting and money.

Households are (building, unit): 동 and 호 for apartments, department and desk for
institutions. Apartment buildings and units are stored as ASCII digits only, so
they sort by number (101동 before 1001동) and never carry markup.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass

from engine.errors import DomainError

APARTMENT = "apartment"
INSTITUTION = "institution"
KINDS = (APARTMENT, INSTITUTION)

BP_PER_UNIT = 10_000
DEFAULT_FREE_SHIPPING_FROM_WON = 50_000
DEFAULT_SHIPPING_FEE_WON = 4_000
MAX_QUANTITY = 9_999
MAX_WON = 10_000_000_000
MAX_TEXT_CHARS = 80
MAX_HOUSEHOLD_TEXT_CHARS = 40

# Short codes avoid characters that are easy to confuse when read aloud or typed
# from paper: no 0/O, 1/I/L, 2/Z, 5/S, 8/B, U/V.
CODE_ALPHABET = "34679ACDEFGHJKMNPQRTWXY"
CODE_LENGTH = 6

_DIGITS = re.compile(r"[0-9]+")
_PHONE = re.compile(r"0[0-9]{8,10}")
_BUILDING = re.compile(r"([0-9]{1,4})\s*(?:동)?")
_UNIT = re.compile(r"([0-9]{1,5})\s*(?:호)?")
_CODE = re.compile(f"[{CODE_ALPHABET}]{{6,8}}")
# Characters never accepted in free text: markup and quoting characters.
_FORBIDDEN_TEXT = set("<>\"'`&\\")


def new_code(length: int = CODE_LENGTH) -> str:
    """Return a random join code from the unambiguous alphabet."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def normalize_code(raw: object) -> str | None:
    """Return the code in upper case when it is 6 to 8 characters of the alphabet, else None."""
    if not isinstance(raw, str):
        return None
    code = raw.strip().upper()
    return code if _CODE.fullmatch(code) else None


def clean_text(raw: object, field: str, *, max_chars: int = MAX_TEXT_CHARS, required: bool = True) -> str:
    """Return NFC text of at most `max_chars` on one line; raise `invalid_field` otherwise.

    Markup characters (< > " ' ` & \\) and control characters are rejected rather
    than stored, although every page escapes text anyway.
    """
    if raw is None and not required:
        return ""
    if not isinstance(raw, str):
        raise DomainError("invalid_field", f"{field} must be text", field=field)
    text = unicodedata.normalize("NFC", raw).strip()
    if required and not text:
        raise DomainError("invalid_field", f"{field} is missing", field=field)
    if len(text) > max_chars:
        raise DomainError("invalid_field", f"{field} is longer than {max_chars} characters", field=field)
    if any(ch in _FORBIDDEN_TEXT or unicodedata.category(ch).startswith("C") for ch in text):
        raise DomainError("invalid_field", f"{field} contains markup or control characters", field=field)
    return text


def parse_phone(raw: object) -> str:
    """Return a contact phone of 9 to 11 ASCII digits starting with 0; raise `invalid_phone`."""
    if not isinstance(raw, str) or not _PHONE.fullmatch(raw.strip()) or not raw.strip().isascii():
        raise DomainError("invalid_phone", "the phone must be 9 to 11 digits starting with 0, without hyphens")
    return raw.strip()


def parse_household(kind: str, building: object, unit: object) -> tuple[str, str]:
    """Return the stored (building, unit) of a household; raise `invalid_household`.

    Apartments: 동 of 1 to 4 digits and 호 of 1 to 5 digits, optionally followed by
    동 or 호, stored as digits without leading zeros. Institutions: department and
    desk as short text.
    """
    if kind == APARTMENT:
        if not isinstance(building, str) or not isinstance(unit, str):
            raise DomainError("invalid_household", "building and unit must be text", field="building")
        building_match = _BUILDING.fullmatch(building.strip())
        unit_match = _UNIT.fullmatch(unit.strip())
        if building_match is None or not building_match.group(1).isascii():
            raise DomainError("invalid_household", "the building (동) must be 1 to 4 digits", field="building")
        if unit_match is None or not unit_match.group(1).isascii():
            raise DomainError("invalid_household", "the unit (호) must be 1 to 5 digits", field="unit")
        building_no, unit_no = int(building_match.group(1)), int(unit_match.group(1))
        if building_no == 0 or unit_no == 0:
            raise DomainError("invalid_household", "building and unit numbers start at 1", field="unit")
        return str(building_no), str(unit_no)
    try:
        department = clean_text(building, "building", max_chars=MAX_HOUSEHOLD_TEXT_CHARS)
        desk = clean_text(unit, "unit", max_chars=MAX_HOUSEHOLD_TEXT_CHARS)
    except DomainError as error:
        raise DomainError("invalid_household", str(error), field=error.detail.get("field", "building")) from None
    return department, desk


def parse_count(raw: object, field: str, *, minimum: int = 0, maximum: int = MAX_QUANTITY) -> int:
    """Parse a whole number: a JSON integer or a string of ASCII digits; raise `invalid_number`.

    Floats, booleans, signs, separators (1,000) and full-width digits are rejected.
    """
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.isascii() and _DIGITS.fullmatch(raw) and len(raw) <= 12:
        value = int(raw)
    else:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise DomainError(
            "invalid_number", f"{field} must be a whole number from {minimum} to {maximum}",
            field=field, minimum=minimum, maximum=maximum,
        )
    return value


def parse_won(raw: object, field: str, *, minimum: int = 0) -> int:
    """Parse whole won like `parse_count`, within `minimum`..10,000,000,000; raise `invalid_amount`."""
    try:
        return parse_count(raw, field, minimum=minimum, maximum=MAX_WON)
    except DomainError:
        raise DomainError("invalid_amount", f"{field} must be whole won, digits only", field=field) from None


# -- display ------------------------------------------------------------------------


def mask_unit(unit: str) -> str:
    """Mask the last two digits of a unit number: 1203 -> 12**, 302 -> 3**, 12 -> **."""
    if len(unit) <= 2:
        return "*" * len(unit) if unit else "*"
    return unit[:-2] + "**"


def mask_desk(desk: str) -> str:
    """Mask a desk name, keeping its first character: 민원창구 -> 민***."""
    if len(desk) <= 1:
        return "*"
    return desk[0] + "*" * (len(desk) - 1)


def household_label(kind: str, building: str, unit: str, *, masked: bool) -> str:
    """Return "101동 1203호" (apartments) or "총무과 1번 창구" (institutions), masked for neighbours."""
    if kind == APARTMENT:
        shown = mask_unit(unit) if masked else unit
        return f"{building}동 {shown}호"
    return f"{building} {mask_desk(unit) if masked else unit}"


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by number: "101" < "1001", "2층" < "10층"."""
    parts = re.split(r"([0-9]+)", text)
    return tuple((0, int(part)) if part.isdigit() and part.isascii() else (1, part) for part in parts if part)


def household_sort_key(building: str, unit: str) -> tuple[object, object]:
    return natural_key(building), natural_key(unit)


# -- money --------------------------------------------------------------------------


@dataclass(frozen=True)
class Shipping:
    goods_total_won: int
    fee_won: int
    waived: bool


def shipping_for(goods_total_won: int, *, free_from_won: int, fee_won: int) -> Shipping:
    """Return the complex's one shipment: free when the goods total reaches `free_from_won`."""
    waived = goods_total_won >= free_from_won
    return Shipping(goods_total_won, 0 if waived else fee_won, waived)


def split_fee(fee_won: int, participant_count: int) -> list[int]:
    """Split a fee into `participant_count` whole-won shares that sum to it.

    The first `fee % count` shares carry one won more, so shares differ by at most 1.
    """
    if participant_count <= 0:
        return []
    base, remainder = divmod(fee_won, participant_count)
    return [base + (1 if index < remainder else 0) for index in range(participant_count)]


def reward_won(paid_won: int, reward_bp: int) -> int:
    """Return the coordinator's reward: `reward_bp` of what the complex paid, floored to the won."""
    if paid_won <= 0 or reward_bp <= 0:
        return 0
    return paid_won * reward_bp // BP_PER_UNIT


def split_share_by_goods(share_won: int, goods_by_key: dict[int, int]) -> dict[int, int]:
    """Split one participant's shipping share over their per-supplier orders, summing to it exactly.

    Each order gets floor(share * goods / total goods). The won left over go one
    each to the orders with the largest remainders (ties to the smaller key), so
    an order's part differs from its exact proportion by less than one won.
    With no goods at all the share goes to the smallest key.
    """
    if not goods_by_key:
        return {}
    total = sum(goods_by_key.values())
    if total <= 0:
        first = min(goods_by_key)
        return {key: share_won if key == first else 0 for key in goods_by_key}
    parts = {key: share_won * goods // total for key, goods in goods_by_key.items()}
    left = share_won - sum(parts.values())
    by_remainder = sorted(goods_by_key, key=lambda key: (-(share_won * goods_by_key[key] % total), key))
    for key in by_remainder[:left]:
        parts[key] += 1
    return parts


def commission_reversed_won(commission_won: int, quantity: int, refunded_units: int) -> int:
    """Return the part of a line's commission reversed once `refunded_units` of `quantity` are refunded.

    The total reversed is floor(commission * refunded / quantity), so each refund
    reverses the increase of that total and a fully refunded line reverses all of it.
    """
    if quantity <= 0 or not 0 <= refunded_units <= quantity:
        raise ValueError(f"refunded_units must be within 0..quantity, got {refunded_units} of {quantity}")
    return commission_won * refunded_units // quantity
