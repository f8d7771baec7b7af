"""Subjects and bodies of the complex-order mails, Korean, as plain text.

Names typed by coordinators are flattened to one line before they reach a subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from engine.complexorders.model import OrderPart

from engine.mail.templates import Mail, _subject, format_kst, format_won, one_line


def order_confirmed(*, complex_name: str, orders: Sequence[OrderPart], shipping_share_won: int,
                    due_at: datetime, pickup_point: str, delivery_date: date, delivery_slot: str,
                    campaign_goods: Sequence[str] = ()) -> Mail:
    """Build one participant's close mail: their orders (one per supplier) and their campaign goods."""
    subject = _subject(f"단지 공동주문이 마감되었습니다: {one_line(complex_name)}")
    lines = [f"{one_line(complex_name, 200)} 공동주문이 마감되어 주문이 확정되었습니다.\n"]
    if orders:
        lines.append("판매자(입점업체)별로 주문이 하나씩 만들어졌습니다. 각 주문 금액을 입금해 주세요.")
        for order in orders:
            shipping = f" (배송비 분담 {format_won(order.shipping_won)} 포함)" if order.shipping_won else ""
            lines.append(f"- 주문번호 {order.order_no} · {one_line(order.supplier_name)} · "
                         f"{format_won(order.amount_won)}{shipping}")
        total = sum(order.amount_won for order in orders)
        shipping = f"배송비 분담 {format_won(shipping_share_won)} 포함" if shipping_share_won else "배송비 무료"
        lines.append(f"결제할 금액 합계: {format_won(total)} ({shipping})")
        lines.append(f"입금 기한: {format_kst(due_at)}")
    if campaign_goods:
        lines.append("공동구매 상품은 해당 공동구매가 마감될 때 따로 주문되며, 이 배송과 함께 전달됩니다:")
        lines.extend(f"- {one_line(goods, 200)}" for goods in campaign_goods)
    lines.append(f"수령 장소: {one_line(pickup_point, 200)}")
    lines.append(f"배송일: {delivery_date.isoformat()} {one_line(delivery_slot)}")
    return Mail(subject, "\n".join(lines) + "\n")


def order_failed(*, complex_name: str, goods_total_won: int, min_total_won: int,
                 has_campaign_goods: bool = False) -> Mail:
    subject = _subject(f"단지 공동주문이 최소 금액에 이르지 못했습니다: {one_line(complex_name)}")
    body = (
        f"{one_line(complex_name, 200)} 공동주문의 합계 {format_won(goods_total_won)}이 최소 금액 "
        f"{format_won(min_total_won)}에 이르지 못해 주문이 진행되지 않습니다.\n"
        "결제하신 금액은 없으며, 주문은 모두 취소되었습니다.\n"
    )
    if has_campaign_goods:
        body += "이 공동주문으로 참여하신 공동구매 수량도 취소되었습니다.\n"
    return Mail(subject, body)


def goods_arrived(*, complex_name: str, pickup_point: str, household: str) -> Mail:
    subject = _subject(f"주문하신 상품이 도착했습니다: {one_line(complex_name)}")
    body = (
        f"{one_line(complex_name, 200)} 공동주문 상품이 도착했습니다.\n"
        f"수령 장소: {one_line(pickup_point, 200)}\n"
        f"수령 세대: {household}\n"
        "수령하실 때 담당자에게 동·호수를 말씀해 주세요.\n"
    )
    return Mail(subject, body)


def refunded(*, complex_name: str, order_no: str, amount_won: int, reason: str) -> Mail:
    subject = _subject(f"부분 환불 안내: 주문 {order_no}")
    body = (
        f"{one_line(complex_name, 200)} 공동주문의 주문 {order_no}에서 {format_won(amount_won)}이 환불되었습니다.\n"
        f"사유: {one_line(reason, 200)}\n"
    )
    return Mail(subject, body)


def coordinator_message(*, complex_name: str, subject: str, body: str) -> Mail:
    """Wrap a coordinator's message in Korean-first text that tells the reader their address stays hidden."""
    wrapped_subject = _subject(f"{one_line(complex_name)} 담당자 안내: {one_line(subject, 100)}")
    text = (
        f"{one_line(complex_name, 200)} 공동주문 담당자가 참여자 모두에게 보낸 안내입니다.\n"
        "(A message from the coordinator of this group order to every participant.)\n\n"
        f"{body}\n\n"
        "--\n"
        "이 메일은 공동주문에 참여하셨기 때문에 받으셨습니다. 담당자에게는 메일 주소가 공개되지 않습니다.\n"
        "You receive this because you joined this group order; your address is not shown to the coordinator.\n"
    )
    return Mail(wrapped_subject, text)
