"""Locale selection, the catalogs and the display filters."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from web.i18n import LOCALE_DIR, ensure_compiled, format_kst, format_won, gettext
from web.templating import LocalizedTemplates


async def test_korean_by_default_even_for_english_browsers(client: httpx.AsyncClient) -> None:
    """Without a choice the pages are Korean, whatever the Accept-Language header requests."""
    response = await client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="ko">' in response.text
    assert "경매 목록" in response.text
    assert "광산구 장터" in response.text


async def test_lang_query_switches_and_sticks(client: httpx.AsyncClient) -> None:
    """`?lang=en` renders English and stores the choice; `?lang=ko` switches back."""
    response = await client.get("/?lang=en")
    assert '<html lang="en">' in response.text
    assert "Gwangsan Market" in response.text
    assert "Auctions" in response.text
    assert client.cookies["lang"] == "en"

    later = await client.get("/login")
    assert '<html lang="en">' in later.text
    assert "Log in" in later.text
    assert 'href="/login?lang=ko"' in later.text

    back = await client.get("/login?lang=ko")
    assert '<html lang="ko">' in back.text
    assert client.cookies["lang"] == "ko"


async def test_unknown_lang_ignored(client: httpx.AsyncClient) -> None:
    """An unsupported `?lang=` value leaves the page Korean and sets no cookie."""
    response = await client.get("/?lang=fr")
    assert '<html lang="ko">' in response.text
    assert "lang" not in client.cookies


async def test_error_page_follows_locale(client: httpx.AsyncClient) -> None:
    """A 404 page is Korean by default and English after switching."""
    korean = await client.get("/no-such-page")
    assert korean.status_code == 404
    assert "페이지나 항목을 찾을 수 없습니다." in korean.text

    english = await client.get("/no-such-page?lang=en")
    assert english.status_code == 404
    assert "The page or item was not found." in english.text


def test_catalogs_compile_when_missing(tmp_path) -> None:
    """ensure_compiled writes a .mo for a .po that has none, and skips it when current."""
    target = tmp_path / "ko" / "LC_MESSAGES"
    target.mkdir(parents=True)
    (target / "messages.po").write_bytes((LOCALE_DIR / "ko" / "LC_MESSAGES" / "messages.po").read_bytes())
    assert ensure_compiled(tmp_path) == [target / "messages.mo"]
    assert ensure_compiled(tmp_path) == []


def test_every_korean_msgid_translated() -> None:
    """Every message in the Korean catalog has a translation and is not marked fuzzy."""
    from babel.messages.pofile import read_po

    with (LOCALE_DIR / "ko" / "LC_MESSAGES" / "messages.po").open("rb") as po_file:
        catalog = read_po(po_file)
    untranslated = [message.id for message in catalog if message.id and (not message.string or message.fuzzy)]
    assert untranslated == []
    assert gettext("ko", "Gwangsan Market") == "광산구 장터"
    assert gettext("en", "Gwangsan Market") == "Gwangsan Market"


@pytest.mark.parametrize(
    ("amount", "locale", "expected"),
    [
        (12900, "ko", "12,900원"),
        (12900, "en", "₩12,900"),
        (0, "ko", "0원"),
        (100, "ko", "100원"),
        (1_000_000, "ko", "1,000,000원"),
        (-5000, "ko", "-5,000원"),
        (-5000, "en", "-₩5,000"),
        (None, "ko", ""),
    ],
)
def test_won_filter(amount: int | None, locale: str, expected: str) -> None:
    """Won amounts get thousands separators and the locale's currency mark."""
    assert format_won(amount, locale) == expected


@pytest.mark.parametrize("amount", [12.5, 12900.0, True, "12900"])
def test_won_filter_rejects_non_integers(amount: object) -> None:
    """Floats, booleans and strings are not money and raise TypeError."""
    with pytest.raises(TypeError):
        format_won(amount)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 12, 4, 10, 30, tzinfo=timezone.utc), "2026-12-04 19:30"),
        (datetime(2026, 12, 4, 15, 30, tzinfo=timezone.utc), "2026-12-05 00:30"),
        (datetime(2026, 12, 4, 14, 59, tzinfo=timezone.utc), "2026-12-04 23:59"),
        (datetime(2026, 12, 31, 15, 0, tzinfo=timezone.utc), "2027-01-01 00:00"),
        (datetime(2026, 12, 4, 15, 30), "2026-12-05 00:30"),  # naive counts as UTC
        (1796398200000, "2026-12-05 00:30"),  # 2026-12-04T15:30:00Z in epoch ms
        (1796398200999, "2026-12-05 00:30"),
        (None, ""),
    ],
)
def test_kst_filter(value: datetime | int | None, expected: str) -> None:
    """UTC moments and epoch milliseconds show as Korea time (UTC+9), across the date line."""
    assert format_kst(value) == expected


def test_kst_filter_with_seconds() -> None:
    """with_seconds adds the seconds, truncating the milliseconds."""
    assert format_kst(1796398200999, with_seconds=True) == "2026-12-05 00:30:00"


def test_filters_in_templates_follow_locale() -> None:
    """The `won`, `kst` and `masked` filters render per locale without a request."""
    templates = LocalizedTemplates()
    source = "{{ 12900|won }} {{ when|kst }} {{ '김민수'|masked }}"
    when = datetime(2026, 12, 4, 15, 30, tzinfo=timezone.utc)
    assert templates.env("ko").from_string(source).render(when=when) == "12,900원 2026-12-05 00:30 김*수"
    assert templates.env("en").from_string(source).render(when=when) == "₩12,900 2026-12-05 00:30 김*수"
