"""Password hashing (argon2id), the email address rule, the locales and the masked names shown on public pages."""

from __future__ import annotations

import re
import unicodedata
from typing import TypeGuard

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

EMAIL_MAX_CHARS = 254
# One plain `local@domain`: exactly one @, and no whitespace, control character,
# quote or other RFC 5322 special that would make the To header name another address
# or a list (<>()[]\,;:"). The outbox sends to nothing else, and the CHECK constraint
# `users_email_plain` (migration 0007) states the same rule in SQL.
_MAIL_ADDRESS_RE = re.compile(r'[^\s\x00-\x1f\x7f@<>()\[\]\\,;:"]+@[^\s\x00-\x1f\x7f@<>()\[\]\\,;:"]+')

# The languages a member can choose for pages and mails, Korean first (the default).
# The CHECK constraint `users_locale_known` (migration 0016) states the same list in SQL.
LOCALES: tuple[str, ...] = ("ko", "en")
DEFAULT_LOCALE = "ko"

# argon2-cffi 23+ defaults: argon2id, 64 MiB, 3 passes, 4 lanes (the RFC 9106 low-memory profile).
_hasher = PasswordHasher()


def is_mail_address(text: str) -> bool:
    """Return whether `text` is one plain `local@domain` address that the outbox can send to.

    Registration and the outbox both use this check, so every stored member
    address can be mailed.
    """
    return len(text) <= EMAIL_MAX_CHARS and _MAIL_ADDRESS_RE.fullmatch(text) is not None


def is_locale(value: object) -> TypeGuard[str]:
    """Return whether `value` is one of `LOCALES` ("ko" or "en"), compared exactly."""
    return isinstance(value, str) and value in LOCALES


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
