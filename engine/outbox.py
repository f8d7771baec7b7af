"""The transactional mail outbox: rows written with their cause, delivered by a worker.

`enqueue` runs inside the transaction that causes the mail, so a mail exists exactly
when its cause committed, and `(event_key, recipient)` is unique, so one event mails
one recipient at most once. A recipient that is not one plain address is skipped
and logged, so a bad stored address never rolls back the business change (a lot's
close, an order's cancellation). `OutboxSender` delivers pending rows over SMTP.

Delivery is at least once at the SMTP level, at most once per row in the outbox: a
row is locked (`FOR UPDATE SKIP LOCKED`) while it is sent and marked `sent` in the
same transaction, so two senders never send one row at the same time. If a sender
dies after the SMTP server accepted a message but before its commit, the row is sent
again; its `Message-ID` (`<outbox-ID@domain>`) is the same both times, so receiving
systems can recognize the duplicate. A failed send keeps the row pending with an
exponential backoff; rows are retried until they are sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import unquote, urlsplit

import aiosmtplib
import asyncpg

from engine.accounts import is_mail_address

log = logging.getLogger("jangteo.outbox")

MAX_SUBJECT_CHARS = 200


def _check_header_value(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError(f"mail {name} must not contain CR or LF")


def check_recipient(recipient: str) -> str:
    """Return the address when it is one plain `local@domain`; raise ValueError otherwise."""
    _check_header_value("recipient", recipient)
    if not is_mail_address(recipient):
        raise ValueError("mail recipient must be one address of the form local@domain")
    return recipient


async def enqueue(
    connection: asyncpg.Connection, event_key: str, recipient: str, subject: str, body: str
) -> bool:
    """Add one mail to the outbox inside the caller's transaction; False if it was not added.

    Returns False when the row was already there, and also when the recipient is not
    one plain address: that mail is skipped and logged (event key and account ids,
    never the address) instead of failing the caller's transaction. Raises
    ValueError when the subject contains a line break or is too long, which is a
    bug in the mail template, so no header can be injected.
    """
    if not is_mail_address(recipient):
        await _log_skipped_recipient(connection, event_key, recipient)
        return False
    _check_header_value("subject", subject)
    if len(subject) > MAX_SUBJECT_CHARS:
        raise ValueError(f"mail subject is longer than {MAX_SUBJECT_CHARS} characters")
    inserted = await connection.fetchval(
        """INSERT INTO outbox (event_key, recipient, subject, body_text)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (event_key, recipient) DO NOTHING
           RETURNING id""",
        event_key, recipient, subject, body,
    )
    return inserted is not None


async def _log_skipped_recipient(connection: asyncpg.Connection, event_key: str, recipient: str) -> None:
    """Log a skipped mail with the ids of the accounts that use the address, never the address."""
    row = await connection.fetchrow(
        """SELECT (SELECT array_agg(id ORDER BY id) FROM users WHERE lower(email) = lower($1)) AS user_ids,
                  (SELECT array_agg(id ORDER BY id) FROM suppliers WHERE lower(email) = lower($1)) AS supplier_ids""",
        recipient,
    )
    log.warning(
        "mail skipped, recipient is not one plain address event_key=%s user_ids=%s supplier_ids=%s",
        event_key, row["user_ids"] or [], row["supplier_ids"] or [],
    )


@dataclass(frozen=True)
class SmtpTarget:
    hostname: str
    port: int
    use_tls: bool = False
    username: str | None = None
    password: str | None = None


def parse_smtp_url(url: str) -> SmtpTarget:
    """Parse `smtp://[user:password@]host:port` (or `smtps://` for implicit TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"SMTP URL must look like smtp://host:port, got scheme {parts.scheme!r}")
    use_tls = parts.scheme == "smtps"
    return SmtpTarget(
        hostname=parts.hostname,
        port=parts.port or (465 if use_tls else 25),
        use_tls=use_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def build_message(*, outbox_id: int, mail_from: str, recipient: str, subject: str, body: str) -> EmailMessage:
    """Build the message of one outbox row; the Message-ID is derived from the row id."""
    _check_header_value("sender", mail_from)
    check_recipient(recipient)
    _check_header_value("subject", subject)
    display_name, from_address = parseaddr(mail_from)
    local_part, _, domain = from_address.partition("@")
    message = EmailMessage()
    message["From"] = Address(display_name=display_name, username=local_part, domain=domain)
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<outbox-{outbox_id}@{domain or 'jangteo.local'}>"
    message.set_content(body, charset="utf-8")
    return message


def _error_summary(error: BaseException) -> str:
    """Summarize an error by class and SMTP code, never by its text, which may name the recipient."""
    code = getattr(error, "code", None)
    return f"{type(error).__name__} code={code}" if code is not None else type(error).__name__


class OutboxSender:
    """Deliver due outbox rows over SMTP, one row per transaction.

    Under load one round sends at most `batch_size` rows over one SMTP connection.
    When the server is unreachable, the row being sent is rescheduled and the round
    ends, so a dead server costs one connection attempt per round, not one per row.
    """

    def __init__(
        self,
        db: asyncpg.Pool,
        *,
        smtp_url: str,
        mail_from: str,
        batch_size: int = 50,
        timeout_s: float = 30.0,
        backoff_base_s: float = 5.0,
        backoff_max_s: float = 3600.0,
    ) -> None:
        self.db = db
        self.target = parse_smtp_url(smtp_url)
        self.mail_from = mail_from
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s

    def backoff_s(self, attempts: int) -> float:
        """Delay before the next try after `attempts` failed tries (doubling, capped)."""
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempts - 1))

    async def send_due(self) -> int:
        """Send up to `batch_size` due rows; return how many were sent."""
        sent = 0
        connection = _SmtpConnection(self._connect)
        try:
            for _ in range(self.batch_size):
                delivered = await self._send_one(connection)
                if not delivered:
                    break
                sent += 1
        finally:
            await connection.close()
        return sent

    async def _send_one(self, smtp_connection: "_SmtpConnection") -> bool:
        """Send the next due row; False when none is due or the send failed."""
        async with self.db.acquire() as connection:
            async with connection.transaction():
                row = await connection.fetchrow(
                    """SELECT id, recipient, subject, body_text, attempts FROM outbox
                       WHERE status = 'pending' AND next_attempt_at <= now()
                       ORDER BY next_attempt_at, id
                       LIMIT 1
                       FOR UPDATE SKIP LOCKED"""
                )
                if row is None:
                    return False
                try:
                    message = build_message(
                        outbox_id=row["id"], mail_from=self.mail_from, recipient=row["recipient"],
                        subject=row["subject"], body=row["body_text"],
                    )
                    smtp = await smtp_connection.get()
                    await smtp.send_message(message)
                except Exception as error:
                    # Any failure, expected (SMTP, network) or not, reschedules this row
                    # only, so one row that cannot be sent never stops the others.
                    attempts = row["attempts"] + 1
                    delay_s = self.backoff_s(attempts)
                    await connection.execute(
                        """UPDATE outbox SET attempts = $2, last_error = $3,
                               next_attempt_at = now() + make_interval(secs => $4)
                           WHERE id = $1""",
                        row["id"], attempts, _error_summary(error), delay_s,
                    )
                    log.warning(
                        "mail failed outbox_id=%s attempts=%s retry_in_s=%.1f error=%s",
                        row["id"], attempts, delay_s, _error_summary(error),
                    )
                    await smtp_connection.close()
                    return False
                await connection.execute(
                    "UPDATE outbox SET status = 'sent', sent_at = now(), attempts = attempts + 1,"
                    " last_error = NULL WHERE id = $1",
                    row["id"],
                )
        log.info("mail sent outbox_id=%s", row["id"])
        return True

    async def _connect(self) -> aiosmtplib.SMTP:
        target = self.target
        smtp = aiosmtplib.SMTP(
            hostname=target.hostname, port=target.port, use_tls=target.use_tls, timeout=self.timeout_s
        )
        await smtp.connect()
        if target.username is not None:
            await smtp.login(target.username, target.password or "")
        return smtp

    async def run(self, stop: asyncio.Event, *, idle_s: float = 1.0) -> None:
        """Send due rows until `stop` is set; sleeps `idle_s` when nothing is due."""
        while not stop.is_set():
            try:
                sent = await self.send_due()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.error("mail round failed error=%s", _error_summary(error))
                sent = 0
            except Exception:
                log.exception("mail round failed unexpectedly")
                sent = 0
            if sent == 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=idle_s)
                except asyncio.TimeoutError:
                    pass


class _SmtpConnection:
    """One SMTP connection for a round, opened on first use and closed at the end or on failure."""

    def __init__(self, connect: Callable[[], Awaitable[aiosmtplib.SMTP]]) -> None:
        self._connect = connect
        self._smtp: aiosmtplib.SMTP | None = None

    async def get(self) -> aiosmtplib.SMTP:
        if self._smtp is None:
            self._smtp = await self._connect()
        return self._smtp

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
            smtp.close()
