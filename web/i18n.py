"""Locales, gettext catalogs and the display filters for money and Korea time.

Korean is the default whatever the browser's Accept-Language header requests.
`?lang=en` (or `?lang=ko`) on any page switches and stores the choice in the `lang`
cookie. A handler can switch the same way with `switch_locale()`, as login does with
the member's stored locale. The catalogs live in
`web/locale/<locale>/LC_MESSAGES/messages.po` with English msgids; `ensure_compiled()`
builds a missing or outdated `.mo` at start, so a checkout works without running
`pybabel compile` first.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from zoneinfo import ZoneInfo

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LOCALES: tuple[str, ...] = ("ko", "en")
DEFAULT_LOCALE = "ko"
LOCALE_COOKIE = "lang"
LOCALE_COOKIE_MAX_AGE_S = 365 * 24 * 3600
# The `scope["state"]` key where `switch_locale()` stores the locale for the cookie.
_SWITCHED_LOCALE_STATE = "switched_locale"
KST = ZoneInfo("Asia/Seoul")

log = logging.getLogger("jangteo.i18n")


# -- catalogs --------------------------------------------------------------------

def ensure_compiled(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Compile every `.po` whose `.mo` is missing or older; return the files written."""
    written: list[Path] = []
    for po_path in sorted(locale_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name)
        # Write to a temporary name first: several processes may start at once and
        # none of them should load a half-written catalog.
        tmp_path = mo_path.with_suffix(f".mo.tmp{id(catalog)}")
        with tmp_path.open("wb") as mo_file:
            write_mo(mo_file, catalog)
        tmp_path.replace(mo_path)
        log.info("catalog compiled path=%s", mo_path)
        written.append(mo_path)
    return written


@lru_cache(maxsize=None)
def get_translations(locale: str) -> Translations:
    """Return the cached catalog of `locale`; unknown locales fall back to msgids."""
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}; expected one of {LOCALES}")
    return Translations.load(str(LOCALE_DIR), [locale], domain=DOMAIN)


def gettext(locale: str, msgid: str) -> str:
    return get_translations(locale).gettext(msgid)


def translate_all(msgid: str, **params: Any) -> dict[str, str]:
    """Translate `msgid` into every locale, filling `{name}` placeholders from `params`."""
    return {locale: format_message(gettext(locale, msgid), params) for locale in LOCALES}


class _KeepMissing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def format_message(template: str, params: dict[str, Any]) -> str:
    """Fill `{name}` placeholders; a placeholder without a value stays as written."""
    if not params:
        return template
    return template.format_map(_KeepMissing(params))


def N_(msgid: str) -> str:
    """Mark `msgid` for extraction without translating it (translated where shown)."""
    return msgid


# The message for a language outside LOCALES, shared by the sign-up form, the account page and the API.
INVALID_LOCALE_MSGID = N_('Choose "ko" (Korean) or "en" (English) as the language.')


# -- locale selection ------------------------------------------------------------

def locale_from_scope(scope: Scope) -> tuple[str, str | None]:
    """Return (locale, requested) for a request; `requested` is a valid `?lang=` value."""
    requested: str | None = None
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if name == "lang" and value in LOCALES:
            requested = value
    if requested:
        return requested, requested

    for raw_name, raw_value in scope.get("headers", []):
        if raw_name != b"cookie":
            continue
        for part in raw_value.decode("latin-1").split(";"):
            name, _, value = part.strip().partition("=")
            if name == LOCALE_COOKIE and value in LOCALES:
                return value, None
    return DEFAULT_LOCALE, None


def switch_locale(request: Request, locale: str) -> None:
    """Switch this response and the visitor's later pages to `locale`, as `?lang=` does.

    `LocaleMiddleware` stores the locale in the `lang` cookie when the response
    starts. It takes precedence over a `?lang=` of the same request. Raises
    ValueError for a locale outside LOCALES.
    """
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}; expected one of {LOCALES}")
    request.state.locale = locale
    setattr(request.state, _SWITCHED_LOCALE_STATE, locale)


def locale_cookie(locale: str, *, secure: bool) -> str:
    """Return the Set-Cookie value that stores `locale` as the visitor's page language for a year."""
    cookie = f"{LOCALE_COOKIE}={locale}; Path=/; Max-Age={LOCALE_COOKIE_MAX_AGE_S}; SameSite=Lax"
    return cookie + "; Secure" if secure else cookie


class LocaleMiddleware:
    """Set `request.state.locale`, and store a `?lang=` or `switch_locale()` choice in the `lang` cookie."""

    def __init__(self, app: ASGIApp, *, cookie_secure: bool = False) -> None:
        self.app = app
        self.cookie_secure = cookie_secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        locale, requested = locale_from_scope(scope)
        state = scope.setdefault("state", {})
        state["locale"] = locale
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                chosen = state.get(_SWITCHED_LOCALE_STATE) or requested
                if chosen is not None:
                    MutableHeaders(scope=message).append("set-cookie", locale_cookie(chosen, secure=self.cookie_secure))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


# -- display filters ---------------------------------------------------------------

def format_won(amount: int | None, locale: str = DEFAULT_LOCALE) -> str:
    """Format integer won: 12900 -> "12,900원" (ko) or "₩12,900" (en)."""
    if amount is None:
        return ""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"won amounts are int, got {type(amount).__name__}: {amount!r}")
    sign = "-" if amount < 0 else ""
    digits = f"{abs(amount):,}"
    if locale == "en":
        return f"{sign}₩{digits}"
    return f"{sign}{digits}원"


def to_kst(value: datetime | int) -> datetime:
    """Convert an aware UTC datetime (naive counts as UTC) or epoch ms to Korea time."""
    if isinstance(value, bool):
        raise TypeError(f"expected a datetime or epoch ms, got bool: {value!r}")
    if isinstance(value, int):
        # Integer arithmetic: a float division would round some millisecond values.
        seconds, millis = divmod(value, 1000)
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc) + timedelta(milliseconds=millis)
    elif isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    else:
        raise TypeError(f"expected a datetime or epoch ms, got {type(value).__name__}: {value!r}")
    return moment.astimezone(KST)


def format_kst(value: datetime | int | None, with_seconds: bool = False) -> str:
    """Format a moment in Korea time: "2026-12-04 19:30" (or with ":SS")."""
    if value is None:
        return ""
    pattern = "%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M"
    return to_kst(value).strftime(pattern)
