"""Registration and login against the `users` table, shared by the pages and the API."""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass, field

import asyncpg
from starlette.requests import Request

from engine.accounts import DEFAULT_LOCALE, hash_password, is_locale, is_mail_address, verify_password
from web.i18n import INVALID_LOCALE_MSGID, N_
from web.sessions import CurrentUser

PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_CHARS = 256
DISPLAY_NAME_MAX_CHARS = 30
_USER_COLUMNS = "id, email, display_name, role, supplier_id, status, locale"

# Verified against when the email is unknown, so a login for an unknown email takes
# as long as one with a wrong password.
_DUMMY_HASH = hash_password("jangteo-timing-equaliser")


@dataclass
class RegistrationForm:
    email: str
    password: str
    display_name: str
    locale: str = DEFAULT_LOCALE  # the language of the member's pages and mails
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_values(
        cls, email: object, password: object, display_name: object, locale: object = None, *, page_locale: str
    ) -> RegistrationForm:
        """Build a form from submitted values; a missing `locale` (None) takes the page's locale."""
        def text(value: object) -> str:
            return value if isinstance(value, str) else ""

        return cls(
            email=text(email).strip(),
            password=text(password),
            display_name=unicodedata.normalize("NFC", text(display_name).strip()),
            locale=page_locale if locale is None else text(locale),
        )

    def validate(self) -> bool:
        """Fill `errors` (field -> English msgid) and return whether there are none."""
        self.errors.clear()
        if not self.email:
            self.errors["email"] = N_("Enter your email address.")
        # The outbox's address rule, plus a dot in the domain (no `name@localhost`).
        elif not is_mail_address(self.email) or "." not in self.email.rpartition("@")[2].strip("."):
            self.errors["email"] = N_("Enter a valid email address, for example name@example.com.")

        if len(self.password) < PASSWORD_MIN_CHARS:
            self.errors["password"] = N_("The password must be at least 8 characters long.")
        elif len(self.password) > PASSWORD_MAX_CHARS:
            self.errors["password"] = N_("The password must be at most 256 characters long.")

        if not self.display_name:
            self.errors["display_name"] = N_("Enter a display name.")
        elif len(self.display_name) > DISPLAY_NAME_MAX_CHARS:
            self.errors["display_name"] = N_("The display name must be at most 30 characters long.")
        elif any(unicodedata.category(char).startswith("C") for char in self.display_name):
            self.errors["display_name"] = N_("The display name contains characters that are not allowed.")

        if not is_locale(self.locale):
            self.errors["locale"] = INVALID_LOCALE_MSGID
        return not self.errors


class EmailTakenError(Exception):
    """A user with this email (compared case-insensitively) already exists."""


async def fetch_user(db: asyncpg.Pool, user_id: int) -> CurrentUser | None:
    row = await db.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)
    return CurrentUser.from_row(row) if row else None


async def create_member(db: asyncpg.Pool, form: RegistrationForm) -> CurrentUser:
    """Insert a validated registration as a 'member' with its locale; raise EmailTakenError on a duplicate."""
    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    password_hash = await asyncio.to_thread(hash_password, form.password)
    try:
        row = await db.fetchrow(
            f"INSERT INTO users (email, password_hash, display_name, role, locale)"
            f" VALUES ($1, $2, $3, 'member', $4) RETURNING {_USER_COLUMNS}",
            form.email,
            password_hash,
            form.display_name,
            form.locale,
        )
    except asyncpg.UniqueViolationError as exc:
        raise EmailTakenError(form.email) from exc
    return CurrentUser.from_row(row)


async def update_locale(db: asyncpg.Pool, user_id: int, locale: str) -> CurrentUser | None:
    """Store the language of a user's pages and mails; return the updated user, or None when the user is gone.

    Raises ValueError for a locale outside `engine.accounts.LOCALES`.
    """
    if not is_locale(locale):
        raise ValueError(f"unknown locale {locale!r}")
    row = await db.fetchrow(f"UPDATE users SET locale = $2 WHERE id = $1 RETURNING {_USER_COLUMNS}", user_id, locale)
    return CurrentUser.from_row(row) if row else None


async def authenticate(db: asyncpg.Pool, email: str, password: str) -> CurrentUser | None:
    """Return the user whose email and password match, or None."""
    row = await db.fetchrow(
        f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)",
        email.strip(),
    )
    if row is None:
        await asyncio.to_thread(verify_password, _DUMMY_HASH, password)
        return None
    if not await asyncio.to_thread(verify_password, row["password_hash"], password):
        return None
    return CurrentUser.from_row(row)


def login_user(request: Request, user: CurrentUser) -> None:
    """Sign `user` in under a new session id and CSRF token."""
    request.state.session.login(user)
    request.state.user = user


def logout_user(request: Request) -> None:
    request.state.session.logout()
    request.state.user = None
