"""An SMTP sink that accepts every message and stores it in a Maildir.

Run it as its own process with `python -m embedded.smtp --port N --maildir DIR`;
the launcher does so when `SMTP_URL` is unset. Nothing is relayed: the sink is for
development, and `list_messages` reads back what it captured (the staff outbox
page uses it). It has no authentication and no TLS, so it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import logging
import mailbox
import os
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path
from typing import cast

from aiosmtpd.smtp import SMTP, Envelope, Session

from embedded.common import (
    LOOPBACK,
    EmbeddedServiceError,
    choose_port,
    file_lock,
    port_accepts,
    process_matches,
    read_int_file,
    terminate_pid,
    wait_until,
    write_int_file,
)

log = logging.getLogger("jangteo.embedded.smtp")
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class MaildirHandler:
    """aiosmtpd handler that stores each message, as received, in a Maildir.

    Like a delivery agent, it prepends `Return-Path` (the envelope sender) and one
    `Delivered-To` per envelope recipient, so Bcc recipients stay visible.
    """

    def __init__(self, maildir: Path) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        trace = f"Return-Path: <{envelope.mail_from}>\n"
        trace += "".join(f"Delivered-To: {recipient}\n" for recipient in envelope.rcpt_tos)
        # Maildir files use LF line ends; SMTP delivers CRLF.
        key = self.maildir.add(trace.encode("utf-8") + content.replace(b"\r\n", b"\n"))
        log.info("mail stored key=%s recipients=%d", key, len(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@dataclass(frozen=True)
class CapturedMail:
    """One message the sink stored."""

    key: str
    received_at: datetime
    envelope_from: str
    envelope_to: tuple[str, ...]
    subject: str
    message: EmailMessage


def _read(maildir: mailbox.Maildir, key: str) -> CapturedMail:
    with maildir.get_file(key) as handle:
        # policy.default makes the parser return EmailMessage objects.
        message = cast(EmailMessage, BytesParser(policy=email.policy.default).parse(handle))
    envelope_from = str(message.get("Return-Path", "")).strip("<>")
    envelope_to = tuple(address for _, address in getaddresses(message.get_all("Delivered-To", [])))
    return CapturedMail(
        key=key,
        received_at=datetime.fromtimestamp(maildir.get_message(key).get_date(), UTC),
        envelope_from=envelope_from,
        envelope_to=envelope_to,
        subject=str(message.get("Subject", "")),
        message=message,
    )


def list_messages(maildir_path: Path, limit: int | None = None) -> list[CapturedMail]:
    """Return the captured messages, newest first, at most `limit` of them.

    A missing Maildir means nothing was captured yet. Messages that another process
    removes while this runs are skipped.
    """
    if not Path(maildir_path).exists():
        return []
    maildir = mailbox.Maildir(maildir_path, create=False)
    dated: list[tuple[float, str]] = []
    for key in maildir.keys():
        try:
            dated.append((maildir.get_message(key).get_date(), key))
        except KeyError:
            continue
    dated.sort(reverse=True)
    if limit is not None:
        dated = dated[:limit]
    captured = []
    for _, key in dated:
        try:
            captured.append(_read(maildir, key))
        except KeyError:
            continue
    return captured


# -- the sink as a process -------------------------------------------------------------


async def serve(port: int, maildir: Path, host: str = LOOPBACK) -> None:
    """Accept mail on host:port until SIGTERM or SIGINT."""
    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="jangteo-sink"), host, port)
    stopped = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stopped.set)
    log.info("smtp sink listening host=%s port=%s maildir=%s", host, port, maildir)
    async with server:
        await stopped.wait()
    log.info("smtp sink stopped port=%s", port)


def ensure_smtp_sink(state_dir: Path, maildir: Path) -> str:
    """Start the sink as a detached process, or reuse a running one; return its `smtp://` URL.

    state_dir (normally `<data_dir>/smtp`) keeps `port`, `smtp.pid` and `smtp.log`.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    pid_file = state_dir / "smtp.pid"
    with file_lock(state_dir / ".lock"):
        port = read_int_file(state_dir / "port")
        if port is not None and process_matches(read_int_file(pid_file), "embedded.smtp") and port_accepts(port):
            log.info("smtp sink reused port=%s", port)
            return f"smtp://{LOOPBACK}:{port}"

        port = choose_port(state_dir / "port", is_ours=False)
        log_path = state_dir / "smtp.log"
        command = [sys.executable, "-m", "embedded.smtp", "--port", str(port), "--maildir", str(maildir.resolve())]
        # posix_spawn rather than Popen: the sink must outlive this process, and a
        # dropped Popen of a running child raises a ResourceWarning. setsid keeps
        # Ctrl-C in the launcher's terminal from reaching it.
        pid = os.posix_spawn(
            sys.executable,
            command,
            {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_PROJECT_ROOT), os.environ.get("PYTHONPATH")]))},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        write_int_file(pid_file, pid)

        def ready() -> bool:
            finished_pid, status = os.waitpid(pid, os.WNOHANG)
            if finished_pid == pid:
                raise EmbeddedServiceError(
                    f"smtp sink exited with code {os.waitstatus_to_exitcode(status)}; see {log_path}"
                )
            return port_accepts(port)

        wait_until(ready, f"smtp sink on port {port}", log_path=log_path)
        log.info("smtp sink started port=%s pid=%s maildir=%s", port, pid, maildir)
        return f"smtp://{LOOPBACK}:{port}"


def stop_smtp_sink(state_dir: Path) -> bool:
    """Stop the sink started by ensure_smtp_sink; return whether one was running."""
    state_dir = state_dir.resolve()
    with file_lock(state_dir / ".lock"):
        pid = read_int_file(state_dir / "smtp.pid")
        if pid is None or not process_matches(pid, "embedded.smtp"):
            return False
        terminate_pid(pid)
    log.info("smtp sink stopped state_dir=%s", state_dir)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m embedded.smtp", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on, on 127.0.0.1")
    parser.add_argument("--maildir", type=Path, required=True, help="Maildir to store messages in (created if missing)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # aiosmtpd logs every SMTP command at INFO; the sink's own line per message is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    asyncio.run(serve(arguments.port, arguments.maildir))


if __name__ == "__main__":
    main()
