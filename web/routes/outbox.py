"""The staff outbox page: transactional mail as queued in PostgreSQL, and, where the
embedded SMTP sink runs, the messages it captured."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from embedded.smtp import list_messages
from web.security import role_required

OUTBOX_ROWS = 100
CAPTURED_MESSAGES = 50


@role_required("staff")
async def outbox(request: Request) -> Response:
    state = request.app.state
    rows = await state.db.fetch(
        "SELECT id, event_key, recipient, subject, status, attempts, created_at, sent_at"
        " FROM outbox ORDER BY id DESC LIMIT $1",
        OUTBOX_ROWS,
    )
    counts = dict(await state.db.fetch("SELECT status, count(*) FROM outbox GROUP BY status"))
    captured = []
    maildir = state.settings.data_dir / "mail"
    # Only the embedded sink writes this Maildir; with a real SMTP_URL the section stays empty.
    if not state.settings.smtp_url or maildir.exists():
        for mail in list_messages(maildir, limit=CAPTURED_MESSAGES):
            body = mail.message.get_body(preferencelist=("plain",))
            captured.append({
                "received_at": mail.received_at,
                "to": ", ".join(mail.envelope_to),
                "subject": mail.subject,
                "body": body.get_content() if body is not None else "",
            })
    return state.templates.TemplateResponse(
        request, "staff/outbox.html", {"rows": rows, "counts": counts, "captured": captured}
    )


routes = [Route("/staff/outbox", outbox, methods=["GET"], name="staff_outbox")]
