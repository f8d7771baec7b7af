"""Tests for password hashing and public name masking."""

from __future__ import annotations

import unicodedata

import pytest

from engine.accounts import hash_password, mask_name, password_needs_rehash, verify_password


def test_hash_password_round_trip() -> None:
    """A hash verifies against the password it was made from."""
    password_hash = hash_password("member1234!")

    assert password_hash.startswith("$argon2id$")
    assert verify_password(password_hash, "member1234!")


def test_hash_password_is_salted() -> None:
    """Hashing one password twice gives two different hashes."""
    assert hash_password("same password") != hash_password("same password")


def test_verify_password_wrong_password() -> None:
    """A wrong password does not verify."""
    password_hash = hash_password("member1234!")

    assert not verify_password(password_hash, "member1234?")
    assert not verify_password(password_hash, "")


def test_verify_password_malformed_hash() -> None:
    """A stored value that is not an argon2 hash verifies nothing instead of raising."""
    assert not verify_password("not-a-hash", "member1234!")
    assert not verify_password("", "member1234!")


def test_password_needs_rehash_current_parameters() -> None:
    """A hash made with the current parameters does not need rehashing."""
    assert not password_needs_rehash(hash_password("staff1234!"))


@pytest.mark.parametrize(
    ("display_name", "expected"),
    [
        ("김민수", "김*수"),
        ("이서연", "이*연"),
        ("이산", "이*"),
        ("남궁민수", "남**수"),
        ("Alice", "A***e"),
        ("Al", "A*"),
        ("김", "*"),
        ("A", "*"),
        ("", "*"),
        ("  김민수  ", "김*수"),
        (unicodedata.normalize("NFD", "김민수"), "김*수"),
    ],
)
def test_mask_name_cases(display_name: str, expected: str) -> None:
    """A name keeps its first and last characters, a two-character name its first, and a shorter one none."""
    assert mask_name(display_name) == expected
