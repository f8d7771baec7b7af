"""Subjects and bodies of the group-buy (공동구매) mails, as plain text in the recipient's locale.

Like `engine.mail.templates`, every builder takes the recipient's locale first, every
text is an English msgid with its Korean translation in `web/locale/ko`, and campaign
titles are flattened to one line before they reach a subject.
"""

from __future__ import annotations

from datetime import datetime

from engine.mail.i18n import MailLocale, mail_locale
from engine.mail.templates import DEPOSIT_ACCOUNT, Mail, one_line


def _bank_transfer_lines(text: MailLocale, due_at: datetime) -> str:
    _ = text.gettext
    return _(
        "Payment method: bank transfer\n"
        "Deposit account: {bank} {account} (account holder {holder})\n"
        "Deposit due: {due}\n"
        "If the deposit is not confirmed by the due time, the order is cancelled automatically.\n"
        "The other participants' price does not change.\n"
    ).format(
        bank=DEPOSIT_ACCOUNT.bank_name, account=DEPOSIT_ACCOUNT.account_no, holder=DEPOSIT_ACCOUNT.holder,
        due=text.kst(due_at),
    )


def _refund_in_full_line(text: MailLocale, refund_won: int) -> str:
    _ = text.gettext
    return _("Your advance payment of {refund} will be refunded in full.\n").format(refund=text.won(refund_won))


def succeeded_awaiting_payment(
    locale: str, *, campaign_id: int, title: str, order_no: str, units: int, unit_price_won: int, amount_won: int,
    paid_won: int, due_at: datetime,
) -> Mail:
    """Build the participant's mail when the campaign succeeded and the order still awaits a deposit."""
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Group buy succeeded: {title}").format(title=one_line(title)))
    body = _(
        "Group buy #{campaign_id} “{title}” has succeeded.\n"
        "\n"
        "Order number: {order_no}\n"
        "Units: {units}\n"
        "Final unit price: {unit_price}\n"
        "Amount to pay: {amount}\n"
    ).format(
        campaign_id=campaign_id, title=one_line(title, 200), order_no=order_no, units=units,
        unit_price=text.won(unit_price_won), amount=text.won(amount_won),
    )
    if paid_won:
        body += _("Deposits already confirmed: {paid}\n").format(paid=text.won(paid_won))
        body += _("Left to transfer: {remainder} (the amount to pay minus the deposits already confirmed)\n").format(
            remainder=text.won(amount_won - paid_won)
        )
    body += "\n" + _bank_transfer_lines(text, due_at)
    return Mail(subject, body)


def succeeded_paid(
    locale: str, *, campaign_id: int, title: str, order_no: str, units: int, unit_price_won: int, amount_won: int,
    paid_won: int, refund_won: int,
) -> Mail:
    """Build the participant's mail when the campaign succeeded and the up-front payment covers the order."""
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Group buy succeeded: {title}").format(title=one_line(title)))
    body = _(
        "Group buy #{campaign_id} “{title}” has succeeded.\n"
        "\n"
        "Order number: {order_no}\n"
        "Units: {units}\n"
        "Final unit price: {unit_price}\n"
        "Amount: {amount} (paid)\n"
        "Paid in advance: {paid}\n"
    ).format(
        campaign_id=campaign_id, title=one_line(title, 200), order_no=order_no, units=units,
        unit_price=text.won(unit_price_won), amount=text.won(amount_won), paid=text.won(paid_won),
    )
    if refund_won:
        body += _("The difference of {refund} will be refunded.\n").format(refund=text.won(refund_won))
    return Mail(subject, body)


def failed(locale: str, *, campaign_id: int, title: str, units: int, refund_won: int) -> Mail:
    """Build the participant's mail when the campaign missed its minimum and the pledge is released."""
    text = mail_locale(locale)
    _, ngettext = text.gettext, text.ngettext
    subject = text.subject(_("Group buy did not succeed: {title}").format(title=one_line(title)))
    body = _(
        "Group buy #{campaign_id} “{title}” did not reach its minimum quantity and will not go ahead.\n"
    ).format(campaign_id=campaign_id, title=one_line(title, 200))
    body += ngettext(
        "Your pledge of {units} unit has been cancelled. Thank you for taking part.\n",
        "Your pledge of {units} units has been cancelled. Thank you for taking part.\n",
        units,
    ).format(units=units)
    if refund_won:
        body += _refund_in_full_line(text, refund_won)
    return Mail(subject, body)


def supplier_succeeded(
    locale: str, *, campaign_id: int, title: str, total_units: int, participants: int, unit_price_won: int
) -> Mail:
    """Build the supplier's mail when the campaign succeeded, with the units to prepare."""
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Group buy succeeded: {title}").format(title=one_line(title)))
    body = _(
        "Group buy #{campaign_id} “{title}” has succeeded.\n"
        "\n"
        "Units to prepare: {units} (participants: {participants})\n"
        "Final unit price: {unit_price}\n"
        "\n"
        "Once the payment of an order is confirmed, the order appears on the supplier pages for shipping.\n"
    ).format(
        campaign_id=campaign_id, title=one_line(title, 200), units=total_units, participants=participants,
        unit_price=text.won(unit_price_won),
    )
    return Mail(subject, body)


def supplier_failed(locale: str, *, campaign_id: int, title: str, total_units: int, min_total_units: int) -> Mail:
    """Build the supplier's mail when the campaign missed its minimum, so nothing is to be prepared."""
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Group buy did not succeed: {title}").format(title=one_line(title)))
    body = _(
        "Group buy #{campaign_id} “{title}” did not reach its minimum quantity of {minimum}"
        " and will not go ahead (units pledged: {units}).\n"
    ).format(campaign_id=campaign_id, title=one_line(title, 200), minimum=min_total_units, units=total_units)
    body += _("There is nothing to prepare.\n")
    return Mail(subject, body)


def up_front_payment_requested(
    locale: str, *, campaign_id: int, title: str, units: int, amount_won: int, hold_expires_at: datetime
) -> Mail:
    """Build the member's mail after an up-front pledge, asking for the "at most" amount before the hold expires."""
    text = mail_locale(locale)
    _, ngettext = text.gettext, text.ngettext
    subject = text.subject(_("Group buy payment details: {title}").format(title=one_line(title)))
    body = ngettext(
        "You pledged {units} unit to group buy #{campaign_id} “{title}”.\n",
        "You pledged {units} units to group buy #{campaign_id} “{title}”.\n",
        units,
    ).format(campaign_id=campaign_id, title=one_line(title, 200), units=units)
    body += "\n" + _(
        "Amount to deposit: {amount} (the maximum; if the final unit price is lower, we refund the difference)\n"
        "Deposit account: {bank} {account} (account holder {holder})\n"
        "Deposit due: {due}\n"
        "\n"
        "If the deposit is not confirmed by the due time, your pledged units are released.\n"
    ).format(
        amount=text.won(amount_won), bank=DEPOSIT_ACCOUNT.bank_name, account=DEPOSIT_ACCOUNT.account_no,
        holder=DEPOSIT_ACCOUNT.holder, due=text.kst(hold_expires_at),
    )
    return Mail(subject, body)


def up_front_deposit_confirmed(
    locale: str, *, campaign_id: int, title: str, units: int, amount_won: int, refunded: bool = False
) -> Mail:
    """Build the member's mail after staff confirmed an up-front deposit; `refunded` when it is paid back in full."""
    text = mail_locale(locale)
    _, ngettext = text.gettext, text.ngettext
    subject = text.subject(_("Group buy deposit confirmed: {title}").format(title=one_line(title)))
    body = ngettext(
        "Group buy #{campaign_id} “{title}”: your deposit of {amount} for {units} unit has been confirmed.\n",
        "Group buy #{campaign_id} “{title}”: your deposit of {amount} for {units} units has been confirmed.\n",
        units,
    ).format(campaign_id=campaign_id, title=one_line(title, 200), units=units, amount=text.won(amount_won))
    if refunded:
        body += _("No pledge or order is left for this deposit to pay, so it will be refunded in full.\n")
    else:
        body += _("Once the final unit price is set after the deadline, we refund the difference.\n")
    return Mail(subject, body)


def hold_expired(locale: str, *, campaign_id: int, title: str, units: int, hold_expires_at: datetime) -> Mail:
    """Build the member's mail when an unpaid up-front pledge was released at the end of its hold."""
    text = mail_locale(locale)
    _, ngettext = text.gettext, text.ngettext
    subject = text.subject(_("Group buy pledge released: {title}").format(title=one_line(title)))
    body = ngettext(
        "Group buy #{campaign_id} “{title}”: no deposit was confirmed by the due time ({due}),"
        " so your pledge of {units} unit was released.\n",
        "Group buy #{campaign_id} “{title}”: no deposit was confirmed by the due time ({due}),"
        " so your pledge of {units} units was released.\n",
        units,
    ).format(campaign_id=campaign_id, title=one_line(title, 200), units=units, due=text.kst(hold_expires_at))
    body += _("If you have already paid, please contact the help desk.\n")
    return Mail(subject, body)


def order_cancelled_unpaid(
    locale: str, *, campaign_id: int, title: str, order_no: str, due_at: datetime, refund_won: int
) -> Mail:
    """Build the buyer's mail when a campaign order lapsed unpaid (other participants keep their price)."""
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Order cancelled: order {order_no}").format(order_no=order_no))
    body = _(
        "Group buy #{campaign_id} “{title}”, order {order_no}: no deposit was confirmed by the due time ({due}),"
        " so the order was cancelled automatically.\n"
    ).format(campaign_id=campaign_id, title=one_line(title, 200), order_no=order_no, due=text.kst(due_at))
    if refund_won:
        body += _refund_in_full_line(text, refund_won)
    body += _("If you have already paid, please contact the help desk.\n")
    return Mail(subject, body)


def cancelled(
    locale: str, *, campaign_id: int, title: str, reason: str | None, units: int, refund_won: int, unpaid_won: int
) -> Mail:
    """Build a member's mail when staff cancelled the campaign.

    `units` are the member's units at the cancel (0 for a member who only had a
    payment), `refund_won` the paid up-front payments refunded in full, and
    `unpaid_won` the bank transfers still awaiting their deposit, which are no longer owed.
    """
    text = mail_locale(locale)
    _, ngettext = text.gettext, text.ngettext
    subject = text.subject(_("Group buy cancelled: {title}").format(title=one_line(title)))
    body = _("The group buy was cancelled by the operator: #{campaign_id} “{title}”\n").format(
        campaign_id=campaign_id, title=one_line(title, 200)
    )
    if reason:
        body += _("Reason for the cancellation: {reason}\n").format(reason=one_line(reason, 500))
    body += "\n"
    if units:
        body += ngettext(
            "Your pledge of {units} unit has been cancelled.\n",
            "Your pledge of {units} units has been cancelled.\n",
            units,
        ).format(units=units)
    if refund_won:
        body += _refund_in_full_line(text, refund_won)
    if unpaid_won:
        body += _(
            "You no longer need to deposit the {amount} that was awaiting your deposit.\n"
            "If you have already paid, please contact the help desk.\n"
        ).format(amount=text.won(unpaid_won))
    body += _("We apologize for the inconvenience.\n")
    return Mail(subject, body)


def supplier_cancelled(locale: str, *, campaign_id: int, title: str, reason: str | None, total_units: int) -> Mail:
    """Build the supplier's mail when staff cancelled the campaign, so nothing is to be prepared."""
    text = mail_locale(locale)
    _ = text.gettext
    subject = text.subject(_("Group buy cancelled: {title}").format(title=one_line(title)))
    body = _(
        "The group buy was cancelled by the operator: #{campaign_id} “{title}”"
        " (units pledged at the cancellation: {units})\n"
    ).format(campaign_id=campaign_id, title=one_line(title, 200), units=total_units)
    if reason:
        body += _("Reason for the cancellation: {reason}\n").format(reason=one_line(reason, 500))
    body += _("There is nothing to prepare.\n")
    return Mail(subject, body)
