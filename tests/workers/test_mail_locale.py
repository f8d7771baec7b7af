"""Mails leave in each recipient's stored locale: a lot close and a campaign close, through the outbox to SMTP."""

from __future__ import annotations

import re

from groupbuy_testkit import campaign_consumer, campaigns, make_campaign, pledge, wait_until_deadline
from groupbuy_testkit import close_until_final as close_campaign_until_final
from worker_testkit import bid_three, close_until_final, send_all, wait_until_due

__all__ = ["campaign_consumer", "campaigns"]  # fixtures

HANGUL = re.compile(r"[\uac00-\ud7a3]")


async def set_locale(db, user_id: int, locale: str) -> None:  # type: ignore[no-untyped-def]
    await db.execute("UPDATE users SET locale = $2 WHERE id = $1", user_id, locale)


async def test_lot_mails_follow_locale(db, live, wk_settings, consumer, market, smtp_sink):
    """An English winner and an English supplier get English mails; Korean losers get Korean ones."""
    lot_id = await market.lot(title="Gwangsan organic rice 10kg")
    first, winner, third = await bid_three(market, lot_id)
    await set_locale(db, winner.user_id, "en")
    await set_locale(db, market.supplier.user_id, "en")  # the supplier's account, not its contact address
    await wait_until_due(live, lot_id)

    assert await close_until_final(db, live, wk_settings, consumer, lot_id) == "sold"
    assert await send_all(db, wk_settings) == 4
    by_recipient = {m.message["To"]: m.message for m in smtp_sink.messages}
    order_no = await db.fetchval(
        "SELECT o.order_no FROM orders o JOIN sales s ON s.id = o.sale_id WHERE s.lot_id = $1", lot_id
    )

    won = by_recipient[market.emails[winner.user_id]]
    assert str(won["Subject"]) == "[Gwangsan Market] Lot won: Gwangsan organic rice 10kg"
    won_body = won.get_content()
    assert f"Congratulations: you won lot #{lot_id} “Gwangsan organic rice 10kg”." in won_body
    assert f"Order number: {order_no}" in won_body
    assert "Winning price: ₩13,500" in won_body
    assert "Payment method: bank transfer" in won_body
    assert re.search(r"Deposit due: [A-Z][a-z]{2} \d{1,2}, \d{4} \d{2}:\d{2} \(KST\)", won_body), won_body
    # Only the district's Korean account name and bank may stay in Hangul.
    assert HANGUL.findall(won_body.replace("광주은행", "").replace("광산구청 장터", "")) == []

    for loser in (first, third):
        lost = by_recipient[market.emails[loser.user_id]]
        assert str(lost["Subject"]) == "[광산구 장터] 경매가 종료되었습니다: Gwangsan organic rice 10kg"
        assert "아쉽게도 이번 경매에는 낙찰되지 않았습니다." in lost.get_content()

    supplier = by_recipient[await market.supplier_email()]
    assert str(supplier["Subject"]) == "[Gwangsan Market] Your lot was sold: Gwangsan organic rice 10kg"
    assert "sold for ₩13,500." in supplier.get_content()


async def test_campaign_mails_follow_locale(db, campaigns, campaign_consumer, wk_settings, market, smtp_sink):
    """After a successful campaign, an English participant reads English and a Korean one reads Korean."""
    campaign_id = await make_campaign(market, campaigns)
    english, korean = await market.member("Alice Kim"), await market.member("이나래")
    await set_locale(db, english.user_id, "en")
    await pledge(market, campaigns, campaign_id, english, 4)
    await pledge(market, campaigns, campaign_id, korean, 6)
    await wait_until_deadline(campaigns, campaign_id)

    assert await close_campaign_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    assert await send_all(db, wk_settings) == 3
    by_recipient = {m.message["To"]: m.message for m in smtp_sink.messages}

    english_mail = by_recipient[market.emails[english.user_id]]
    assert str(english_mail["Subject"]).startswith("[Gwangsan Market] Group buy succeeded: ")
    english_body = english_mail.get_content()
    assert "Units: 4\n" in english_body
    assert "Final unit price: ₩8,000\n" in english_body
    assert "Amount to pay: ₩32,000\n" in english_body
    assert "Payment method: bank transfer\n" in english_body
    assert "원" not in english_body.replace("광산구청 장터", "")

    korean_body = by_recipient[market.emails[korean.user_id]].get_content()
    assert "수량: 6개\n" in korean_body
    assert "결제 금액: 48,000원\n" in korean_body
    assert "무통장입금" in korean_body
