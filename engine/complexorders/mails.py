"""Subjects and bodies of the complex-order mails, Korean, as plain text.

Names typed by coordinators are flattened to one line before they reach a subject.
"""

from __future__ import annotations

from datetime import date, datetime

from engine.mail.templates import Mail, _subject, format_kst, format_won, one_line


def order_confirmed(*, complex_name: str, order_no: str, amount_won: int, shipping_share_won: int,
                    due_at: datetime, pickup_point: str, delivery_date: date, delivery_slot: str) -> Mail:
    subject = _subject(f"단지 공동주문이 마감되었습니다: {one_line(complex_name)}")
    shipping = f"(배송비 분담 {format_won(shipping_share_won)} 포함)\n" if shipping_share_won else "(배송비 무료)\n"
    body = (
        f"{one_line(complex_name, 200)} 공동주문이 마감되어 주문이 확정되었습니다.\n\n"
        f"주문번호: {order_no}\n"
        f"결제할 금액: {format_won(amount_won)} {shipping}"
        f"입금 기한: {format_kst(due_at)}\n"
        f"수령 장소: {one_line(pickup_point, 200)}\n"
        f"배송일: {delivery_date.isoformat()} {one_line(delivery_slot)}\n"
    )
    return Mail(subject, body)


def order_failed(*, complex_name: str, goods_total_won: int, min_total_won: int) -> Mail:
    subject = _subject(f"단지 공동주문이 최소 금액에 이르지 못했습니다: {one_line(complex_name)}")
    body = (
        f"{one_line(complex_name, 200)} 공동주문의 합계 {format_won(goods_total_won)}이 최소 금액 "
        f"{format_won(min_total_won)}에 이르지 못해 주문이 진행되지 않습니다.\n"
        "결제하신 금액은 없으며, 주문은 모두 취소되었습니다.\n"
    )
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
