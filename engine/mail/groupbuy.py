"""Subjects and bodies of the group-buy (공동구매) mails, Korean first, as plain text.

Like `engine.mail.templates`, every text a recipient reads is wrapped in `_()` for
the gettext catalogs, and campaign titles are flattened to one line before they
reach a subject.
"""

from __future__ import annotations

from datetime import datetime

from engine.mail.templates import DEPOSIT_ACCOUNT, Mail, _, _subject, format_kst, format_won, one_line


def _bank_transfer_lines(due_at: datetime) -> str:
    return _(
        "결제 방법: 무통장입금\n"
        "입금 계좌: {bank} {account} (예금주 {holder})\n"
        "입금 기한: {due}\n"
        "입금 기한까지 입금이 확인되지 않으면 주문은 자동으로 취소됩니다.\n"
        "다른 참여자의 가격은 바뀌지 않습니다.\n"
    ).format(
        bank=DEPOSIT_ACCOUNT.bank_name, account=DEPOSIT_ACCOUNT.account_no, holder=DEPOSIT_ACCOUNT.holder,
        due=format_kst(due_at),
    )


def succeeded_awaiting_payment(
    *, campaign_id: int, title: str, order_no: str, units: int, unit_price_won: int, amount_won: int,
    paid_won: int, due_at: datetime,
) -> Mail:
    """Build the participant's mail when the campaign succeeded and the order still awaits a deposit."""
    subject = _subject(_("공동구매가 성사되었습니다: {title}").format(title=one_line(title)))
    body = _(
        "공동구매 #{campaign_id} '{title}'가 성사되었습니다.\n"
        "\n"
        "주문번호: {order_no}\n"
        "수량: {units}개\n"
        "최종 단가: {unit_price}\n"
        "결제 금액: {amount}\n"
    ).format(
        campaign_id=campaign_id, title=one_line(title, 200), order_no=order_no, units=units,
        unit_price=format_won(unit_price_won), amount=format_won(amount_won),
    )
    if paid_won:
        body += _("이미 입금 확인된 금액: {paid}\n").format(paid=format_won(paid_won))
    body += "\n" + _bank_transfer_lines(due_at)
    return Mail(subject, body)


def succeeded_paid(
    *, campaign_id: int, title: str, order_no: str, units: int, unit_price_won: int, amount_won: int,
    paid_won: int, refund_won: int,
) -> Mail:
    """Build the participant's mail when the campaign succeeded and the up-front payment covers the order."""
    subject = _subject(_("공동구매가 성사되었습니다: {title}").format(title=one_line(title)))
    body = _(
        "공동구매 #{campaign_id} '{title}'가 성사되었습니다.\n"
        "\n"
        "주문번호: {order_no}\n"
        "수량: {units}개\n"
        "최종 단가: {unit_price}\n"
        "결제 금액: {amount} (결제 완료)\n"
        "미리 결제하신 금액: {paid}\n"
    ).format(
        campaign_id=campaign_id, title=one_line(title, 200), order_no=order_no, units=units,
        unit_price=format_won(unit_price_won), amount=format_won(amount_won), paid=format_won(paid_won),
    )
    if refund_won:
        body += _("차액 {refund}은 환불됩니다.\n").format(refund=format_won(refund_won))
    return Mail(subject, body)


def failed(*, campaign_id: int, title: str, units: int, refund_won: int) -> Mail:
    """Build the participant's mail when the campaign missed its minimum and the pledge is released."""
    subject = _subject(_("공동구매가 성사되지 않았습니다: {title}").format(title=one_line(title)))
    body = _(
        "공동구매 #{campaign_id} '{title}'가 최소 수량에 이르지 못해 성사되지 않았습니다.\n"
        "신청하신 {units}개는 취소되었습니다. 참여해 주셔서 감사합니다.\n"
    ).format(campaign_id=campaign_id, title=one_line(title, 200), units=units)
    if refund_won:
        body += _("미리 결제하신 {refund}은 전액 환불됩니다.\n").format(refund=format_won(refund_won))
    return Mail(subject, body)


def supplier_succeeded(
    *, campaign_id: int, title: str, total_units: int, participants: int, unit_price_won: int
) -> Mail:
    """Build the supplier's mail when the campaign succeeded, with the units to prepare."""
    subject = _subject(_("공동구매가 성사되었습니다: {title}").format(title=one_line(title)))
    body = _(
        "공동구매 #{campaign_id} '{title}'가 성사되었습니다.\n"
        "\n"
        "준비할 수량: {units}개 (참여자 {participants}명)\n"
        "최종 단가: {unit_price}\n"
        "\n"
        "주문별 결제가 확인되면 입점업체 화면에서 발송할 주문을 볼 수 있습니다.\n"
    ).format(
        campaign_id=campaign_id, title=one_line(title, 200), units=total_units, participants=participants,
        unit_price=format_won(unit_price_won),
    )
    return Mail(subject, body)


def supplier_failed(*, campaign_id: int, title: str, total_units: int, min_total_units: int) -> Mail:
    """Build the supplier's mail when the campaign missed its minimum, so nothing is to be prepared."""
    subject = _subject(_("공동구매가 성사되지 않았습니다: {title}").format(title=one_line(title)))
    body = _(
        "공동구매 #{campaign_id} '{title}'가 최소 수량 {minimum}개에 이르지 못해 성사되지 않았습니다"
        " (신청 {units}개).\n"
        "준비할 상품은 없습니다.\n"
    ).format(campaign_id=campaign_id, title=one_line(title, 200), minimum=min_total_units, units=total_units)
    return Mail(subject, body)


def up_front_payment_requested(
    *, campaign_id: int, title: str, units: int, amount_won: int, hold_expires_at: datetime
) -> Mail:
    """Build the member's mail after an up-front pledge, asking for the "at most" amount before the hold expires."""
    subject = _subject(_("공동구매 입금 안내: {title}").format(title=one_line(title)))
    body = _(
        "공동구매 #{campaign_id} '{title}'에 {units}개를 신청하셨습니다.\n"
        "\n"
        "입금하실 금액: {amount} (최대 금액, 최종 단가가 낮아지면 차액을 환불해 드립니다)\n"
        "입금 계좌: {bank} {account} (예금주 {holder})\n"
        "입금 기한: {due}\n"
        "\n"
        "입금 기한까지 입금이 확인되지 않으면 신청 수량은 해제됩니다.\n"
    ).format(
        campaign_id=campaign_id, title=one_line(title, 200), units=units, amount=format_won(amount_won),
        bank=DEPOSIT_ACCOUNT.bank_name, account=DEPOSIT_ACCOUNT.account_no, holder=DEPOSIT_ACCOUNT.holder,
        due=format_kst(hold_expires_at),
    )
    return Mail(subject, body)


def up_front_deposit_confirmed(*, campaign_id: int, title: str, units: int, amount_won: int) -> Mail:
    subject = _subject(_("공동구매 입금이 확인되었습니다: {title}").format(title=one_line(title)))
    body = _(
        "공동구매 #{campaign_id} '{title}'의 입금 {amount}({units}개분)이 확인되었습니다.\n"
        "마감 후 최종 단가가 정해지면 차액을 환불해 드립니다.\n"
    ).format(campaign_id=campaign_id, title=one_line(title, 200), units=units, amount=format_won(amount_won))
    return Mail(subject, body)


def hold_expired(*, campaign_id: int, title: str, units: int, hold_expires_at: datetime) -> Mail:
    """Build the member's mail when an unpaid up-front pledge was released at the end of its hold."""
    subject = _subject(_("공동구매 신청이 해제되었습니다: {title}").format(title=one_line(title)))
    body = _(
        "공동구매 #{campaign_id} '{title}'의 입금 기한({due})까지 입금이 확인되지 않아"
        " 신청하신 {units}개가 해제되었습니다.\n"
        "이미 입금하셨다면 고객센터로 연락해 주세요.\n"
    ).format(campaign_id=campaign_id, title=one_line(title, 200), units=units, due=format_kst(hold_expires_at))
    return Mail(subject, body)


def order_cancelled_unpaid(*, campaign_id: int, title: str, order_no: str, due_at: datetime, refund_won: int) -> Mail:
    """Build the buyer's mail when a campaign order lapsed unpaid (other participants keep their price)."""
    subject = _subject(_("주문이 취소되었습니다: 주문 {order_no}").format(order_no=order_no))
    body = _(
        "공동구매 #{campaign_id} '{title}'의 주문 {order_no}은 입금 기한({due})까지 입금이 확인되지 않아"
        " 자동으로 취소되었습니다.\n"
    ).format(campaign_id=campaign_id, title=one_line(title, 200), order_no=order_no, due=format_kst(due_at))
    if refund_won:
        body += _("미리 결제하신 {refund}은 전액 환불됩니다.\n").format(refund=format_won(refund_won))
    body += _("이미 입금하셨다면 고객센터로 연락해 주세요.\n")
    return Mail(subject, body)


def cancelled(
    *, campaign_id: int, title: str, reason: str | None, units: int, refund_won: int, unpaid_won: int
) -> Mail:
    """Build a member's mail when staff cancelled the campaign.

    `units` are the member's units at the cancel (0 for a member who only had a
    payment), `refund_won` the paid up-front payments refunded in full, and
    `unpaid_won` the bank transfers still awaiting their deposit, which are no longer owed.
    """
    subject = _subject(_("공동구매가 취소되었습니다: {title}").format(title=one_line(title)))
    body = _("공동구매가 운영자에 의해 취소되었습니다: #{campaign_id} '{title}'\n").format(
        campaign_id=campaign_id, title=one_line(title, 200)
    )
    if reason:
        body += _("취소 사유: {reason}\n").format(reason=one_line(reason, 500))
    body += "\n"
    if units:
        body += _("신청하신 {units}개는 취소되었습니다.\n").format(units=units)
    if refund_won:
        body += _("미리 결제하신 {refund}은 전액 환불됩니다.\n").format(refund=format_won(refund_won))
    if unpaid_won:
        body += _(
            "입금을 기다리던 {amount}은 더 이상 입금하지 않으셔도 됩니다.\n"
            "이미 입금하셨다면 고객센터로 연락해 주세요.\n"
        ).format(amount=format_won(unpaid_won))
    body += _("불편을 드려 죄송합니다.\n")
    return Mail(subject, body)


def supplier_cancelled(*, campaign_id: int, title: str, reason: str | None, total_units: int) -> Mail:
    """Build the supplier's mail when staff cancelled the campaign, so nothing is to be prepared."""
    subject = _subject(_("공동구매가 취소되었습니다: {title}").format(title=one_line(title)))
    body = _("공동구매가 운영자에 의해 취소되었습니다: #{campaign_id} '{title}' (취소 시점 신청 {units}개)\n").format(
        campaign_id=campaign_id, title=one_line(title, 200), units=total_units
    )
    if reason:
        body += _("취소 사유: {reason}\n").format(reason=one_line(reason, 500))
    body += _("준비할 상품은 없습니다.\n")
    return Mail(subject, body)
