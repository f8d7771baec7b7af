"""Messages from a complex order's coordinator to its participants, sent through the outbox.

Each message is one `complex_messages` row and one outbox mail per participant
(event key `complex:{id}:message:{message id}`), written in one transaction. The
outbox is unique per event key and recipient, so each participant gets it once. Addresses stay in the outbox: the sender
only learns how many participants were mailed. A complex order sends at most
`MAX_MESSAGES_PER_HOUR` messages in any rolling hour, judged by PostgreSQL's clock.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass

import asyncpg

from engine.actors import Actor
from engine.complexorders import mails
from engine.complexorders.closing import _enqueue, _locked, require_coordinator
from engine.errors import DomainError
from engine.mail.i18n import recipient_locale
from engine.orders import audit

log = logging.getLogger("jangteo.complexorders")

MAX_SUBJECT_CHARS = 100
MAX_BODY_CHARS = 2_000
MAX_MESSAGES_PER_HOUR = 5


@dataclass(frozen=True)
class SentMessage:
    message_id: int
    recipients: int


def clean_subject(raw: object) -> str:
    """Return a subject of 1 to 100 characters on one line; raise `invalid_field`.

    CR, LF and every other control character are rejected, so no header can be injected.
    """
    if not isinstance(raw, str):
        raise DomainError("invalid_field", "subject must be text", field="subject")
    subject = unicodedata.normalize("NFC", raw).strip()
    if not subject:
        raise DomainError("invalid_field", "subject is missing", field="subject")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise DomainError("invalid_field", f"subject is longer than {MAX_SUBJECT_CHARS} characters", field="subject")
    if any(unicodedata.category(ch).startswith("C") for ch in subject):
        raise DomainError("invalid_field", "subject must be one line without control characters", field="subject")
    return subject


def clean_body(raw: object) -> str:
    """Return a body of 1 to 2,000 characters with LF line ends; raise `invalid_field`.

    CRLF and CR become LF before the length check; tabs are kept and other control
    characters are rejected.
    """
    if not isinstance(raw, str):
        raise DomainError("invalid_field", "body must be text", field="body")
    body = unicodedata.normalize("NFC", raw).replace("\r\n", "\n").replace("\r", "\n").strip()
    if not body:
        raise DomainError("invalid_field", "body is missing", field="body")
    if len(body) > MAX_BODY_CHARS:
        raise DomainError("invalid_field", f"body is longer than {MAX_BODY_CHARS} characters", field="body")
    if any(unicodedata.category(ch).startswith("C") and ch not in "\n\t" for ch in body):
        raise DomainError("invalid_field", "body contains control characters", field="body")
    return body


async def send_message(
    db: asyncpg.Pool, actor: Actor, complex_order_id: int, *, subject: object, body: object
) -> SentMessage:
    """Mail a message to every participant of a complex order (its coordinator or staff).

    Raises `invalid_field`, `complex_not_found`, `forbidden`, and
    `message_rate_limited` (with `retry_after_s`) after `MAX_MESSAGES_PER_HOUR`
    messages in the last hour.
    """
    clean_subject_text = clean_subject(subject)
    clean_body_text = clean_body(body)
    async with db.acquire() as connection:
        async with connection.transaction():
            # The row lock serializes senders of one complex order, so the count below is exact.
            complex_order = await _locked(connection, complex_order_id)
            require_coordinator(complex_order, actor)
            recent = await connection.fetch(
                """SELECT created_at FROM complex_messages
                   WHERE complex_order_id = $1 AND created_at > now() - interval '1 hour'
                   ORDER BY created_at""",
                complex_order_id,
            )
            if len(recent) >= MAX_MESSAGES_PER_HOUR:
                retry_after_s = await connection.fetchval(
                    "SELECT ceil(extract(epoch FROM $1::timestamptz + interval '1 hour' - now()))::int",
                    recent[len(recent) - MAX_MESSAGES_PER_HOUR]["created_at"],
                )
                raise DomainError(
                    "message_rate_limited",
                    f"complex order {complex_order_id} sent {MAX_MESSAGES_PER_HOUR} messages in the last hour",
                    complex_order_id=complex_order_id, limit=MAX_MESSAGES_PER_HOUR,
                    retry_after_s=max(1, retry_after_s),
                )
            recipients = await connection.fetch(
                """SELECT DISTINCT u.email FROM complex_participants p JOIN users u ON u.id = p.user_id
                   WHERE p.complex_order_id = $1 AND u.email IS NOT NULL""",
                complex_order_id,
            )
            message_id = await connection.fetchval(
                """INSERT INTO complex_messages (complex_order_id, sender_id, subject, body, recipients)
                   VALUES ($1, $2, $3, $4, 0) RETURNING id""",
                complex_order_id, actor.user_id, clean_subject_text, clean_body_text,
            )
            event_key = f"complex:{complex_order_id}:message:{message_id}"
            queued = 0
            for row in recipients:
                mail = mails.coordinator_message(await recipient_locale(connection, row["email"]),
                                                 complex_name=complex_order.complex_name, subject=clean_subject_text,
                                                 body=clean_body_text)
                queued += await _enqueue(connection, event_key, row["email"], mail)
            await connection.execute("UPDATE complex_messages SET recipients = $2 WHERE id = $1", message_id, queued)
            await audit(connection, actor, "complex.message", "complex_order", complex_order_id,
                        {"message_id": message_id, "recipients": queued})
    log.info("complex message queued complex_order_id=%s message_id=%s recipients=%s",
             complex_order_id, message_id, queued)
    return SentMessage(message_id, queued)
