"""Every mail builder renders in Korean and in English from the catalogs, and recipients map to their locale."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import date, datetime, timezone

import pytest

from engine.complexorders import mails as complex_mails
from engine.complexorders.model import OrderPart
from engine.mail import groupbuy, templates
from engine.mail.i18n import mail_locale, recipient_locale
from engine.mail.templates import Mail

DUE = datetime(2026, 12, 5, 5, 31, tzinfo=timezone.utc)  # 14:31 in Korea
HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Korean words that stay in every locale: the deposit account's bank and holder.
KOREAN_IN_EVERY_LOCALE = ("광주은행", "광산구청 장터")
TITLE = "Organic rice 10kg"


def _order_part() -> OrderPart:
    return OrderPart(order_id=1, order_no="C202612050001", supplier_id=1, supplier_name="Gwangsan Farm",
                     goods_won=30_000, shipping_won=2_000, amount_won=32_000, status="awaiting_payment")


# Each builder with arguments that reach every optional line.
BUILDERS: dict[str, Callable[[str], Mail]] = {
    "lot_won": lambda locale: templates.lot_won(
        locale, lot_id=3, title=TITLE, order_no="A1", amount_won=80_000, due_at=DUE),
    "lot_lost": lambda locale: templates.lot_lost(locale, lot_id=3, title=TITLE),
    "lot_supplier_sold": lambda locale: templates.lot_supplier_sold(
        locale, lot_id=3, title=TITLE, order_no="A1", amount_won=80_000),
    "lot_supplier_unsold": lambda locale: templates.lot_supplier_unsold(locale, lot_id=3, title=TITLE),
    "second_chance_offered": lambda locale: templates.second_chance_offered(
        locale, lot_id=3, title=TITLE, price_won=79_000, expires_at=DUE),
    "deposit_confirmed": lambda locale: templates.deposit_confirmed(
        locale, order_no="G1", amount_won=80_000, prepaid_won=30_000, deposit_won=60_000, refund_won=10_000),
    "order_cancelled_unpaid": lambda locale: templates.order_cancelled_unpaid(locale, order_no="A1", due_at=DUE),
    "succeeded_awaiting_payment": lambda locale: groupbuy.succeeded_awaiting_payment(
        locale, campaign_id=2, title=TITLE, order_no="G1", units=4, unit_price_won=8_000, amount_won=32_000,
        paid_won=9_000, due_at=DUE),
    "succeeded_paid": lambda locale: groupbuy.succeeded_paid(
        locale, campaign_id=2, title=TITLE, order_no="G1", units=4, unit_price_won=8_000, amount_won=32_000,
        paid_won=36_000, refund_won=4_000),
    "failed": lambda locale: groupbuy.failed(locale, campaign_id=2, title=TITLE, units=4, refund_won=36_000),
    "supplier_succeeded": lambda locale: groupbuy.supplier_succeeded(
        locale, campaign_id=2, title=TITLE, total_units=10, participants=2, unit_price_won=8_000),
    "supplier_failed": lambda locale: groupbuy.supplier_failed(
        locale, campaign_id=2, title=TITLE, total_units=3, min_total_units=10),
    "up_front_payment_requested": lambda locale: groupbuy.up_front_payment_requested(
        locale, campaign_id=2, title=TITLE, units=4, amount_won=36_000, hold_expires_at=DUE),
    "up_front_deposit_confirmed": lambda locale: groupbuy.up_front_deposit_confirmed(
        locale, campaign_id=2, title=TITLE, units=4, amount_won=36_000),
    "hold_expired": lambda locale: groupbuy.hold_expired(
        locale, campaign_id=2, title=TITLE, units=4, hold_expires_at=DUE),
    "groupbuy_order_cancelled_unpaid": lambda locale: groupbuy.order_cancelled_unpaid(
        locale, campaign_id=2, title=TITLE, order_no="G1", due_at=DUE, refund_won=9_000),
    "cancelled": lambda locale: groupbuy.cancelled(
        locale, campaign_id=2, title=TITLE, reason="Supplier out of stock", units=4, refund_won=9_000,
        unpaid_won=27_000),
    "supplier_cancelled": lambda locale: groupbuy.supplier_cancelled(
        locale, campaign_id=2, title=TITLE, reason="Supplier out of stock", total_units=10),
    "order_confirmed": lambda locale: complex_mails.order_confirmed(
        locale, complex_name="Cheomdan Apartments", orders=[_order_part()], shipping_share_won=2_000, due_at=DUE,
        pickup_point="Management office", delivery_date=date(2026, 12, 9), delivery_slot="10:00-12:00",
        campaign_goods=["Laver x 2"]),
    "order_failed": lambda locale: complex_mails.order_failed(
        locale, complex_name="Cheomdan Apartments", goods_total_won=40_000, min_total_won=100_000,
        has_campaign_goods=True),
    "goods_arrived": lambda locale: complex_mails.goods_arrived(
        locale, complex_name="Cheomdan Apartments", pickup_point="Management office", household="101-1101"),
    "refunded": lambda locale: complex_mails.refunded(
        locale, complex_name="Cheomdan Apartments", order_no="C1", amount_won=5_000, reason="Damaged box"),
    "coordinator_message": lambda locale: complex_mails.coordinator_message(
        locale, complex_name="Cheomdan Apartments", subject="Pickup time", body="Saturday from 10:00."),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_korean_mail_is_translated(name: str) -> None:
    """Every Korean line comes from the catalog: no line of the Korean mail equals a line of the English one."""
    korean, english = BUILDERS[name]("ko"), BUILDERS[name]("en")
    assert korean.subject.startswith("[광산구 장터] ")
    assert HANGUL.search(korean.subject.removeprefix("[광산구 장터] ")), korean.subject
    english_lines = {line for line in english.body.splitlines() if HANGUL.search(line) is None and line.strip()}
    untranslated = [line for line in korean.body.splitlines() if line in english_lines and " " in line]
    # Values alone on a line (a goods line, the coordinator's own text) are the same in both languages.
    assert untranslated in ([], ["- Laver x 2"], ["Saturday from 10:00."]), untranslated


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_english_mail_has_no_korean(name: str) -> None:
    """An English mail has no Hangul apart from the deposit account's bank and holder."""
    mail = BUILDERS[name]("en")
    assert mail.subject.startswith("[Gwangsan Market] ")
    text = mail.subject + "\n" + mail.body
    for korean_word in KOREAN_IN_EVERY_LOCALE:
        text = text.replace(korean_word, "")
    assert HANGUL.findall(text) == [], text
    assert "\n" not in mail.subject


@pytest.mark.parametrize(
    ("locale", "amount", "moment"),
    [("ko", "80,000원", "2026년 12월 5일 14:31 (KST)"), ("en", "₩80,000", "Dec 5, 2026 14:31 (KST)")],
)
def test_money_and_time_formats(locale: str, amount: str, moment: str) -> None:
    """Amounts are integer won with thousands separators, and times are Korea time, in both locales."""
    text = mail_locale(locale)
    assert text.won(80_000) == amount
    assert text.kst(DUE) == moment
    with pytest.raises(ValueError):
        text.kst(DUE.replace(tzinfo=None))  # a naive time could be in any zone
    assert text.won(-5_000).startswith("-")
    with pytest.raises(TypeError):
        text.won(80_000.0)  # type: ignore[arg-type]


def test_plural_units_in_english() -> None:
    """English counts pick singular or plural; Korean has one form."""
    singular = groupbuy.hold_expired("en", campaign_id=2, title=TITLE, units=1, hold_expires_at=DUE)
    plural = groupbuy.hold_expired("en", campaign_id=2, title=TITLE, units=3, hold_expires_at=DUE)
    assert "your pledge of 1 unit was released" in singular.body
    assert "your pledge of 3 units was released" in plural.body
    korean = groupbuy.hold_expired("ko", campaign_id=2, title=TITLE, units=3, hold_expires_at=DUE)
    assert "신청하신 3개가 해제되었습니다" in korean.body


def test_unknown_locale_rejected() -> None:
    """A locale outside ko and en raises instead of mailing msgids."""
    with pytest.raises(ValueError, match="unknown mail locale 'fr'"):
        templates.lot_lost("fr", lot_id=3, title=TITLE)


async def test_recipient_locale_lookup(pg_pool) -> None:  # type: ignore[no-untyped-def]
    """A user's address gives their locale (any case); a supplier's contact address gives its oldest account's."""
    tag = secrets.token_hex(4)
    member_email = f"Member-{tag}@example.com"
    await pg_pool.execute(
        "INSERT INTO users (email, password_hash, display_name, locale) VALUES ($1, 'x', 'Alice', 'en')", member_email
    )
    supplier_email = f"shop-{tag}@example.com"
    supplier_id = await pg_pool.fetchval(
        """INSERT INTO suppliers (name, business_no, representative, phone, email, address, kind, is_local, status)
           VALUES ('농장', $1, '박대표', '0629400000', $2, '광주', 'farm', true, 'approved') RETURNING id""",
        secrets.token_hex(5), supplier_email,
    )
    for index, locale in enumerate(("en", "ko")):
        await pg_pool.execute(
            "INSERT INTO users (email, password_hash, display_name, role, supplier_id, locale)"
            " VALUES ($1, 'x', '박대표', 'supplier', $2, $3)",
            f"shop-user{index}-{tag}@example.com", supplier_id, locale,
        )

    async with pg_pool.acquire() as connection:
        assert await recipient_locale(connection, member_email.lower()) == "en"
        assert await recipient_locale(connection, supplier_email) == "en"
        assert await recipient_locale(connection, f"nobody-{tag}@example.com") == "ko"
        assert await recipient_locale(connection, None) == "ko"
