"""Password hashing (argon2id) and the masked names shown on public pages."""

from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi 23+ defaults: argon2id, 64 MiB, 3 passes, 4 lanes (the RFC 9106 low-memory profile).
_hasher = PasswordHasher()


def hash_password(plain: str) -> str:
    """Hash a password with argon2id. The result embeds its salt and parameters."""
    return _hasher.hash(plain)


def verify_password(password_hash: str, plain: str) -> bool:
    """Return whether `plain` matches `password_hash`, treating a malformed hash as no match."""
    try:
        return _hasher.verify(password_hash, plain)
    except (VerificationError, InvalidHashError):
        # VerifyMismatchError is a subclass of VerificationError.
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """Return whether a stored hash uses weaker parameters than the current hasher."""
    return _hasher.check_needs_rehash(password_hash)


def mask_name(display_name: str) -> str:
    """Mask a name for public views, keeping only its first and last characters.

    김민수 -> 김*수, 남궁민수 -> 남**수, Alice -> A***e. A two-character name keeps
    its first character (이산 -> 이*), and a one-character or empty name becomes "*",
    so a masked name never shows the whole name.
    """
    # NFC first, so a Hangul syllable typed as separate jamo counts as one character.
    name = unicodedata.normalize("NFC", display_name).strip()
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
