"""Korean mail texts never put a particle straight after a title or an order number."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from engine.mail import templates

DUE = datetime(2026, 12, 5, 5, 31, tzinfo=timezone.utc)
# A quoted or bare value followed by a particle whose form depends on the value's last
# syllable (이/가, 을/를, 은/는, 과/와, 으로/로).
PARTICLE_AFTER_VALUE = re.compile(r"(?:[」'\"]|\d)(?:이|가|을|를|은|는|과|와|로|으로)(?:\s|$)")


def all_mails(title: str) -> list[templates.Mail]:
    return [
        templates.lot_won("ko", lot_id=3, title=title, order_no="A0001", amount_won=15_000, due_at=DUE),
        templates.lot_lost("ko", lot_id=3, title=title),
        templates.lot_supplier_sold("ko", lot_id=3, title=title, order_no="A0001", amount_won=15_000),
        templates.lot_supplier_unsold("ko", lot_id=3, title=title),
        templates.second_chance_offered("ko", lot_id=3, title=title, price_won=14_000, expires_at=DUE),
        templates.deposit_confirmed("ko", order_no="A0001", amount_won=15_000),
        templates.order_cancelled_unpaid("ko", order_no="A0001", due_at=DUE),
    ]


def test_no_particle_after_values() -> None:
    """Titles ending with or without a final consonant read correctly, because no particle follows them."""
    for title in ("[경매] 햇김 선물세트", "[경매] 사과 10kg"):
        for mail in all_mails(title):
            assert not PARTICLE_AFTER_VALUE.search(mail.body), mail.body
        for mail in all_mails(title)[:5]:
            assert f"「{title}」" in mail.body


def test_lost_mail_names_lot_after_colon() -> None:
    """The mail to a bidder who did not win starts with "경매가 종료되었습니다:" and the quoted title."""
    mail = templates.lot_lost("ko", lot_id=3, title="[경매] 햇김")
    assert mail.body.startswith("경매가 종료되었습니다: #3 「[경매] 햇김」\n")
