"""The plain rules of complex orders: masking, parsing, sorting and money."""

from __future__ import annotations

import pytest

from engine.complexorders import rules
from engine.errors import DomainError

MASK_CASES = [
    ("1203", "12**"),
    ("302", "3**"),
    ("1501", "15**"),
    ("10001", "100**"),
    ("12", "**"),
    ("7", "*"),
]


@pytest.mark.parametrize(("unit", "masked"), MASK_CASES)
def test_mask_unit_table(unit: str, masked: str) -> None:
    """A unit number shows all but its last two digits."""
    assert rules.mask_unit(unit) == masked


def test_household_label_masked_and_full() -> None:
    """Neighbours see 101동 12**호; the coordinator sees the whole unit."""
    assert rules.household_label("apartment", "101", "1203", masked=True) == "101동 12**호"
    assert rules.household_label("apartment", "101", "1203", masked=False) == "101동 1203호"
    assert rules.household_label("institution", "총무과", "민원창구", masked=True) == "총무과 민***"


@pytest.mark.parametrize(("building", "unit", "stored"), [
    ("101", "1203", ("101", "1203")),
    ("101동", "1203호", ("101", "1203")),
    (" 0101 ", "0302", ("101", "302")),
])
def test_parse_household_apartment_accepts(building: str, unit: str, stored: tuple[str, str]) -> None:
    """Apartment 동/호 are stored as digits without suffixes or leading zeros."""
    assert rules.parse_household("apartment", building, unit) == stored


@pytest.mark.parametrize(("building", "unit"), [
    ("<b>101</b>", "1203"),
    ("101", "<script>alert(1)</script>"),
    ("１０１", "1203"),
    ("101", "12-03"),
    ("0", "1203"),
    ("", "1203"),
    (101, "1203"),
])
def test_parse_household_apartment_rejects(building: object, unit: object) -> None:
    """Markup, full-width digits, separators and zero are rejected as invalid_household."""
    with pytest.raises(DomainError) as caught:
        rules.parse_household("apartment", building, unit)
    assert caught.value.code == "invalid_household"


def test_parse_household_institution_rejects_markup() -> None:
    """An institution's department with markup characters is rejected."""
    with pytest.raises(DomainError) as caught:
        rules.parse_household("institution", "<i>총무과</i>", "1번")
    assert caught.value.code == "invalid_household"
    assert rules.parse_household("institution", " 총무과 ", "민원 1번") == ("총무과", "민원 1번")


@pytest.mark.parametrize("phone", ["010-1234-5678", "01012345678x", "+821012345678", "０１０１２３４５６７８", "1012345678", "0101"])
def test_parse_phone_rejects_non_digits(phone: str) -> None:
    """A phone with hyphens, letters, a sign or full-width digits is rejected."""
    with pytest.raises(DomainError) as caught:
        rules.parse_phone(phone)
    assert caught.value.code == "invalid_phone"


def test_parse_phone_accepts_digits() -> None:
    """Mobile and landline numbers of 9 to 11 digits are accepted."""
    assert rules.parse_phone("01012345678") == "01012345678"
    assert rules.parse_phone("029601234") == "029601234"


@pytest.mark.parametrize("raw", ["1,000", "1.5", "+1", "-1", "１", True, 1.0, "", " 1", None])
def test_parse_count_rejects(raw: object) -> None:
    """Quantities accept only JSON integers or plain ASCII digit strings."""
    with pytest.raises(DomainError) as caught:
        rules.parse_count(raw, "quantity")
    assert caught.value.code == "invalid_number"


def test_natural_order_of_buildings() -> None:
    """101 sorts before 1001, and 2 before 10."""
    assert sorted(["1001", "101", "2", "10"], key=rules.natural_key) == ["2", "10", "101", "1001"]


def test_shipping_waived_at_threshold() -> None:
    """Shipping is free from the threshold up and charged below it."""
    assert rules.shipping_for(50_000, free_from_won=50_000, fee_won=4_000) == rules.Shipping(50_000, 0, True)
    assert rules.shipping_for(49_999, free_from_won=50_000, fee_won=4_000) == rules.Shipping(49_999, 4_000, False)


def test_split_fee_sums_to_fee() -> None:
    """Fee shares are whole won, differ by at most one and sum to the fee."""
    assert rules.split_fee(4_000, 3) == [1_334, 1_333, 1_333]
    assert sum(rules.split_fee(4_001, 7)) == 4_001


def test_reward_floors_to_won() -> None:
    """The reward is basis points of the paid total, floored."""
    assert rules.reward_won(65_000, 150) == 975
    assert rules.reward_won(33_333, 100) == 333
    assert rules.reward_won(10_000, 0) == 0


def test_codes_use_unambiguous_alphabet() -> None:
    """Codes are 6 characters without 0, O, 1, I, L and similar pairs."""
    for _ in range(200):
        code = rules.new_code()
        assert len(code) == 6
        assert not set(code) & set("0O1IL2Z5S8BUV")
        assert rules.normalize_code(code.lower()) == code
