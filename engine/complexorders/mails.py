"""Subjects and bodies of the complex-order mails, as plain text in the recipient's locale.

Like `engine.mail.templates`, every builder takes the recipient's locale first and
every text is an English msgid with its Korean translation in `web/locale/ko`. Names
typed by coordinators are flattened to one line before they reach a subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from engine.complexorders.model import OrderPart

from engine.mail.i18n import mail_locale
from engine.mail.templates import Mail, one_line


def order_confirmed(locale: str, *, complex_name: str, orders: Sequence[OrderPart], shipping_share_won: int,
                    due_at: datetime, pickup_point: str, delivery_date: date, delivery_slot: str,
                    campaign_goods: Sequence[str] = ()) -> Mail:
    """Build one participant's close mail: their orders (one per supplier) and their campaign goods."""
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Complex group order closed: {name}").format(name=one_line(complex_name)))
    lines = [_("The {name} group order has closed, and your order is confirmed.\n").format(
        name=one_line(complex_name, 200))]
    if orders:
        lines.append(_("One order was created for each seller (supplier). Please deposit the amount of each order."))
        for order in orders:
            shipping = ""
            if order.shipping_won:
                shipping = _(" (including a shipping share of {amount})").format(amount=text.won(order.shipping_won))
            lines.append(_("- Order number {order_no} · {supplier} · {amount}{shipping}").format(
                order_no=order.order_no, supplier=one_line(order.supplier_name), amount=text.won(order.amount_won),
                shipping=shipping,
            ))
        total = sum(order.amount_won for order in orders)
        if shipping_share_won:
            shipping = _("including a shipping share of {amount}").format(amount=text.won(shipping_share_won))
        else:
            shipping = _("free shipping")
        lines.append(_("Total to pay: {total} ({shipping})").format(total=text.won(total), shipping=shipping))
        lines.append(_("Deposit due: {due}").format(due=text.kst(due_at)))
    if campaign_goods:
        lines.append(_("Group-buy goods are ordered separately when their group buy closes,"
                       " and they come with this delivery:"))
        lines.extend(f"- {one_line(goods, 200)}" for goods in campaign_goods)
    lines.append(_("Pickup point: {place}").format(place=one_line(pickup_point, 200)))
    lines.append(_("Delivery date: {date} {slot}").format(date=delivery_date.isoformat(),
                                                           slot=one_line(delivery_slot)))
    return Mail(subject, "\n".join(lines) + "\n")


def order_failed(locale: str, *, complex_name: str, goods_total_won: int, min_total_won: int,
                 has_campaign_goods: bool = False) -> Mail:
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(
        _("Complex group order did not reach its minimum amount: {name}").format(name=one_line(complex_name))
    )
    body = _(
        "The {name} group order totals {total}, which is below its minimum amount of {minimum},"
        " so it will not go ahead.\n"
        "Nothing was charged, and every order has been cancelled.\n"
    ).format(name=one_line(complex_name, 200), total=text.won(goods_total_won), minimum=text.won(min_total_won))
    if has_campaign_goods:
        body += _("The group-buy units you joined through this group order have been cancelled too.\n")
    return Mail(subject, body)


def goods_arrived(locale: str, *, complex_name: str, pickup_point: str, household: str) -> Mail:
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Your goods have arrived: {name}").format(name=one_line(complex_name)))
    body = _(
        "The goods of the {name} group order have arrived.\n"
        "Pickup point: {place}\n"
        "Household: {household}\n"
        "When you pick them up, tell the person in charge your building and unit number.\n"
    ).format(name=one_line(complex_name, 200), place=one_line(pickup_point, 200), household=household)
    return Mail(subject, body)


def refunded(locale: str, *, complex_name: str, order_no: str, amount_won: int, reason: str) -> Mail:
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Partial refund: order {order_no}").format(order_no=order_no))
    body = _(
        "{amount} has been refunded from order {order_no} of the {name} group order.\n"
        "Reason: {reason}\n"
    ).format(name=one_line(complex_name, 200), order_no=order_no, amount=text.won(amount_won),
             reason=one_line(reason, 200))
    return Mail(subject, body)


def coordinator_message(locale: str, *, complex_name: str, subject: str, body: str) -> Mail:
    """Wrap a coordinator's message in text stating that the reader's address stays hidden."""
    text = mail_locale(locale)
    _ = text.gettext
    wrapped_subject = text.subject(_("{name} coordinator notice: {subject}").format(
        name=one_line(complex_name), subject=one_line(subject, 100)))
    wrapped_body = (
        _("A message from the coordinator of the {name} group order to every participant.\n").format(
            name=one_line(complex_name, 200))
        + "\n"
        + body
        + "\n\n--\n"
        + _("You receive this mail because you joined this group order."
            " Your address is not shown to the coordinator.\n")
    )
    return Mail(wrapped_subject, wrapped_body)
