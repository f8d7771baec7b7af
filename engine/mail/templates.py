"""Subjects and bodies of the auction and order mails, as plain text in the recipient's locale.

Every builder takes the recipient's locale first ("ko" or "en", see
`engine.mail.i18n.recipient_locale`) and renders the mail at once, so the outbox
stores the text the recipient reads. Every text is an English msgid wrapped in `_()`
or `ngettext()`, and the Korean text is its translation in `web/locale/ko`.

In the Korean texts, titles, names and order numbers are quoted or followed by a
colon, never by a particle such as 이/가 or 을/를: the right particle depends on the
value's last syllable, which the text cannot know. Values from users (lot titles,
names) are flattened to one line before they reach a subject, because a header must
never contain a line break.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from engine.mail.i18n import KST, mail_locale

__all__ = [
    "KST", "DEPOSIT_ACCOUNT", "BankAccount", "Mail", "one_line",
    "lot_won", "lot_lost", "lot_supplier_sold", "lot_supplier_unsold", "second_chance_offered",
    "deposit_confirmed", "order_cancelled_unpaid",
]


@dataclass(frozen=True)
class Mail:
    subject: str
    body: str


def one_line(text: str, max_chars: int = 60) -> str:
    """Replace line breaks and other control characters with spaces and shorten."""
    cleaned = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= max_chars else cleaned[: max_chars - 1] + "…"


# -- auctions -------------------------------------------------------------------------


@dataclass(frozen=True)
class BankAccount:
    bank_name: str
    account_no: str
    holder: str


# NOTE: the district's deposit account is not configurable yet; staff tell buyers the
# account in the order page until a setting exists. The bank name and holder stay in
# Korean in every locale, because a transfer names the account as the bank registered it.
DEPOSIT_ACCOUNT = BankAccount(bank_name="광주은행", account_no="000-000-000000", holder="광산구청 장터")


def lot_won(locale: str, *, lot_id: int, title: str, order_no: str, amount_won: int, due_at: datetime) -> Mail:
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Lot won: {title}").format(title=one_line(title)))
    body = _(
        "Congratulations: you won lot #{lot_id} “{title}”.\n"
        "\n"
        "Order number: {order_no}\n"
        "Winning price: {amount}\n"
        "Payment method: bank transfer\n"
        "Deposit account: {bank} {account} (account holder {holder})\n"
        "Deposit due: {due}\n"
        "\n"
        "If the deposit is not confirmed by the due time, the order is cancelled automatically.\n"
        "Please enter the order number or your member name as the depositor name.\n"
    ).format(
        lot_id=lot_id, title=one_line(title, 200), order_no=order_no, amount=text.won(amount_won),
        bank=DEPOSIT_ACCOUNT.bank_name, account=DEPOSIT_ACCOUNT.account_no,
        holder=DEPOSIT_ACCOUNT.holder, due=text.kst(due_at),
    )
    return Mail(subject, body)


def lot_lost(locale: str, *, lot_id: int, title: str) -> Mail:
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Auction ended: {title}").format(title=one_line(title)))
    body = _(
        "Auction ended: #{lot_id} “{title}”\n"
        "You did not win this auction. Thank you for taking part.\n"
    ).format(lot_id=lot_id, title=one_line(title, 200))
    return Mail(subject, body)


def lot_supplier_sold(locale: str, *, lot_id: int, title: str, order_no: str, amount_won: int) -> Mail:
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Your lot was sold: {title}").format(title=one_line(title)))
    body = _(
        "Lot #{lot_id} “{title}”: sold for {amount}.\n"
        "Order number: {order_no}\n"
        "We will send you the shipping details once the buyer's deposit is confirmed.\n"
    ).format(lot_id=lot_id, title=one_line(title, 200), amount=text.won(amount_won), order_no=order_no)
    return Mail(subject, body)


def lot_supplier_unsold(locale: str, *, lot_id: int, title: str) -> Mail:
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Your lot was not sold: {title}").format(title=one_line(title)))
    body = _(
        "Lot #{lot_id} “{title}”: the auction ended without a winner"
        " (there were no bids, or the reserve price was not met).\n"
        "You can list the lot again on the seller pages.\n"
    ).format(lot_id=lot_id, title=one_line(title, 200))
    return Mail(subject, body)


def second_chance_offered(locale: str, *, lot_id: int, title: str, price_won: int, expires_at: datetime) -> Mail:
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Second-chance offer: {title}").format(title=one_line(title)))
    body = _(
        "The winner of lot #{lot_id} “{title}” did not pay,"
        " so we offer the lot to you as the runner-up bidder.\n"
        "\n"
        "Offer price: {price} (your maximum bid)\n"
        "Accept by: {expires}\n"
        "\n"
        "If you accept, a bank-transfer order is created. After this time the offer lapses.\n"
    ).format(lot_id=lot_id, title=one_line(title, 200), price=text.won(price_won), expires=text.kst(expires_at))
    return Mail(subject, body)


# -- orders ---------------------------------------------------------------------------


def deposit_confirmed(
    locale: str, *, order_no: str, amount_won: int, prepaid_won: int = 0, deposit_won: int | None = None,
    refund_won: int = 0,
) -> Mail:
    """Build the buyer's mail when staff confirmed the bank transfer of an order.

    `deposit_won` is the transfer received (the order's amount when None),
    `prepaid_won` the group-buy payments made in advance that count toward the
    order, and `refund_won` what the transfer exceeded the amount due by.
    """
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Deposit confirmed: order {order_no}").format(order_no=order_no))
    body = _("Order {order_no}: your deposit of {amount} has been confirmed.\n").format(
        order_no=order_no, amount=text.won(amount_won if deposit_won is None else deposit_won)
    )
    if prepaid_won:
        body += _("Paid in advance for the group buy: {prepaid} (order amount {amount})\n").format(
            prepaid=text.won(prepaid_won), amount=text.won(amount_won)
        )
    if refund_won:
        body += _("The {refund} you deposited beyond the amount due will be refunded.\n").format(
            refund=text.won(refund_won)
        )
    body += _("The seller will prepare and send your goods.\n")
    return Mail(subject, body)


def order_cancelled_unpaid(locale: str, *, order_no: str, due_at: datetime) -> Mail:
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Order cancelled: order {order_no}").format(order_no=order_no))
    body = _(
        "Order {order_no}: no deposit was confirmed by the due time ({due}),"
        " so the order was cancelled automatically.\n"
    ).format(order_no=order_no, due=text.kst(due_at))
    body += _("If you have already paid, please contact the help desk.\n")
    return Mail(subject, body)
