"""Mail locales: the gettext catalogs of `web/locale`, money and time formats, and each recipient's locale.

Mail texts use English msgids, like the pages, and the Korean catalog contains
the Korean texts, which are the default. The catalogs are read from the `.po` files,
not from the compiled `.mo` files: a worker process never runs the web app's
compile step, and a missing or outdated `.mo` would send English to Korean readers.
Fuzzy entries are left out, as `pybabel compile` without `--use-fuzzy` leaves them out.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from engine.accounts import DEFAULT_LOCALE, LOCALES

CATALOG_DIR = Path(__file__).resolve().parents[2] / "web" / "locale"
CATALOG_DOMAIN = "messages"
KST = ZoneInfo("Asia/Seoul")

# CLDR patterns of the times in mails, by locale (Korea time is added by `kst`).
_TIME_PATTERNS = {"en": "MMM d, y HH:mm", "ko": "y'년' M'월' d'일' HH:mm"}


@lru_cache(maxsize=None)
def load_translations(locale: str, catalog_dir: Path = CATALOG_DIR) -> Translations:
    """Load the catalog of `locale` from its `.po` file, once per process.

    Raises ValueError for a locale outside `LOCALES` and FileNotFoundError when the
    catalog is missing, so a broken checkout fails instead of mailing msgids.
    """
    if locale not in LOCALES:
        raise ValueError(f"unknown mail locale {locale!r}; expected one of {LOCALES}")
    po_path = catalog_dir / locale / "LC_MESSAGES" / f"{CATALOG_DOMAIN}.po"
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=CATALOG_DOMAIN)


@dataclass(frozen=True)
class MailLocale:
    """The translations and the money and time formats of one locale, for building mails."""

    code: str
    translations: Translations

    def gettext(self, msgid: str) -> str:
        return self.translations.gettext(msgid)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self.translations.ngettext(singular, plural, count)

    def won(self, amount_won: int) -> str:
        """Format integer won as the pages do: 12900 -> "12,900원" (ko) or "₩12,900" (en)."""
        if isinstance(amount_won, bool) or not isinstance(amount_won, int):
            raise TypeError(f"won amounts are int, got {type(amount_won).__name__}: {amount_won!r}")
        sign = "-" if amount_won < 0 else ""
        digits = f"{abs(amount_won):,}"
        return f"{sign}₩{digits}" if self.code == "en" else f"{sign}{digits}원"

    def kst(self, moment: datetime) -> str:
        """Format an aware datetime in Korea time: "2026년 12월 5일 14:31 (KST)" or "Dec 5, 2026 14:31 (KST)"."""
        if moment.tzinfo is None:
            raise ValueError(f"mail times must be timezone-aware, got {moment!r}")
        pattern = _TIME_PATTERNS.get(self.code, _TIME_PATTERNS[DEFAULT_LOCALE])
        return f"{format_datetime(moment, pattern, tzinfo=KST, locale=self.code)} (KST)"

    def subject(self, text: str) -> str:
        """Prefix a subject with the site name in brackets: "[광산구 장터] …"."""
        return f"[{self.gettext('Gwangsan Market')}] {text}"


def mail_locale(code: str) -> MailLocale:
    """Return the `MailLocale` of `code`; raise ValueError for a locale outside `LOCALES`."""
    return MailLocale(code, load_translations(code))


async def recipient_locale(connection: asyncpg.Connection, address: str | None) -> str:
    """Return the stored locale of the account a mail goes to, or Korean when there is none.

    The address is matched case-insensitively against the users first (the address
    is unique there). A supplier's contact address that is no user's login gets the
    locale of that supplier's oldest account. No address (None) gets Korean.
    """
    if not address:
        return DEFAULT_LOCALE
    locale = await connection.fetchval(
        """SELECT coalesce(
               (SELECT locale FROM users WHERE lower(email) = lower($1)),
               (SELECT u.locale FROM suppliers s JOIN users u ON u.supplier_id = s.id
                 WHERE lower(s.email) = lower($1) ORDER BY u.id LIMIT 1))""",
        address,
    )
    return locale if locale in LOCALES else DEFAULT_LOCALE
