"""Subjects and bodies of the transactional mails, Korean first, as plain text.

Every text a recipient reads is in this module, wrapped in `_()`, so the strings can
be extracted into gettext catalogs and translated later. Titles, names and order
numbers are quoted or followed by a colon, never by a particle such as 이/가 or 을/를:
the right particle depends on the value's last syllable, which the text cannot know. Values from users (lot
titles, names) are flattened to one line before they reach a subject, because a
header must never contain a line break.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")
SITE_NAME = "광산구 장터"


def _(message: str) -> str:
    """Mark a text for translation; returns it unchanged until catalogs exist."""
    return message


@dataclass(frozen=True)
class Mail:
    subject: str
    body: str


def format_won(amount_won: int) -> str:
    """Format an amount in won: 12900 -> "12,900원"."""
    return f"{amount_won:,}원"


def format_kst(moment: datetime) -> str:
    """Format an aware datetime in Korea time, e.g. "2025년 9월 3일 14:05 (KST)"."""
    local = moment.astimezone(KST)
    return f"{local.year}년 {local.month}월 {local.day}일 {local:%H:%M} (KST)"


def one_line(text: str, max_chars: int = 60) -> str:
    """Replace line breaks and other control characters with spaces and shorten."""
    cleaned = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= max_chars else cleaned[: max_chars - 1] + "…"


def _subject(text: str) -> str:
    return f"[{SITE_NAME}] {text}"


# -- auctions -------------------------------------------------------------------------


@dataclass(frozen=True)
class BankAccount:
    bank_name: str
    account_no: str
    holder: str


# NOTE: the district's deposit account is not configurable yet; staff tell buyers the
# account in the order page until a setting exists.
DEPOSIT_ACCOUNT = BankAccount(bank_name="광주은행", account_no="000-000-000000", holder="광산구청 장터")


def lot_won(*, lot_id: int, title: str, order_no: str, amount_won: int, due_at: datetime) -> Mail:
    subject = _subject(_("낙찰되었습니다: {title}").format(title=one_line(title)))
    body = _(
        "축하합니다. 경매 #{lot_id} 「{title}」에 낙찰되었습니다.\n"
        "\n"
        "주문번호: {order_no}\n"
        "낙찰가: {amount}\n"
        "결제 방법: 무통장입금\n"
        "입금 계좌: {bank} {account} (예금주 {holder})\n"
        "입금 기한: {due}\n"
        "\n"
        "입금 기한까지 입금이 확인되지 않으면 주문은 자동으로 취소됩니다.\n"
        "입금자명은 주문번호 또는 회원 이름으로 적어 주세요.\n"
    ).format(
        lot_id=lot_id, title=one_line(title, 200), order_no=order_no, amount=format_won(amount_won),
        bank=DEPOSIT_ACCOUNT.bank_name, account=DEPOSIT_ACCOUNT.account_no,
        holder=DEPOSIT_ACCOUNT.holder, due=format_kst(due_at),
    )
    return Mail(subject, body)


def lot_lost(*, lot_id: int, title: str) -> Mail:
    subject = _subject(_("경매가 종료되었습니다: {title}").format(title=one_line(title)))
    body = _(
        "경매가 종료되었습니다: #{lot_id} 「{title}」\n"
        "아쉽게도 이번 경매에는 낙찰되지 않았습니다. 참여해 주셔서 감사합니다.\n"
    ).format(lot_id=lot_id, title=one_line(title, 200))
    return Mail(subject, body)


def lot_supplier_sold(*, lot_id: int, title: str, order_no: str, amount_won: int) -> Mail:
    subject = _subject(_("경매 상품이 낙찰되었습니다: {title}").format(title=one_line(title)))
    body = _(
        "경매 #{lot_id} 「{title}」: {amount}에 낙찰되었습니다.\n"
        "주문번호: {order_no}\n"
        "구매자의 입금이 확인되면 배송 안내를 드립니다.\n"
    ).format(lot_id=lot_id, title=one_line(title, 200), amount=format_won(amount_won), order_no=order_no)
    return Mail(subject, body)


def lot_supplier_unsold(*, lot_id: int, title: str) -> Mail:
    subject = _subject(_("경매가 유찰되었습니다: {title}").format(title=one_line(title)))
    body = _(
        "경매 #{lot_id} 「{title}」: 낙찰자 없이 종료되었습니다"
        " (입찰이 없거나 최저낙찰가에 미달했습니다).\n"
        "판매자 페이지에서 경매를 다시 등록할 수 있습니다.\n"
    ).format(lot_id=lot_id, title=one_line(title, 200))
    return Mail(subject, body)


def second_chance_offered(*, lot_id: int, title: str, price_won: int, expires_at: datetime) -> Mail:
    subject = _subject(_("차순위 구매 제안: {title}").format(title=one_line(title)))
    body = _(
        "경매 #{lot_id} 「{title}」의 낙찰자가 결제하지 않아 차순위 입찰자인 회원님께 구매를 제안합니다.\n"
        "\n"
        "제안 가격: {price} (회원님의 최고 입찰가)\n"
        "수락 기한: {expires}\n"
        "\n"
        "수락하시면 무통장입금 주문이 만들어집니다. 기한이 지나면 제안은 없어집니다.\n"
    ).format(
        lot_id=lot_id, title=one_line(title, 200), price=format_won(price_won), expires=format_kst(expires_at)
    )
    return Mail(subject, body)


# -- orders ---------------------------------------------------------------------------


def deposit_confirmed(*, order_no: str, amount_won: int) -> Mail:
    subject = _subject(_("입금이 확인되었습니다: 주문 {order_no}").format(order_no=order_no))
    body = _(
        "주문 {order_no}: 입금액 {amount}, 입금이 확인되었습니다.\n"
        "판매자가 상품을 준비해 보내 드립니다.\n"
    ).format(order_no=order_no, amount=format_won(amount_won))
    return Mail(subject, body)


def order_cancelled_unpaid(*, order_no: str, due_at: datetime) -> Mail:
    subject = _subject(_("주문이 취소되었습니다: 주문 {order_no}").format(order_no=order_no))
    body = _(
        "주문 {order_no}: 입금 기한({due})까지 입금이 확인되지 않아 자동으로 취소되었습니다.\n"
        "이미 입금하셨다면 고객센터로 연락해 주세요.\n"
    ).format(order_no=order_no, due=format_kst(due_at))
    return Mail(subject, body)
