"""The signed-in user's account page, where they choose the language of their pages and mails."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.accounts import is_locale
from web.i18n import INVALID_LOCALE_MSGID
from web.security import login_required, require_user
from web.templating import LANGUAGE_NAMES
from web.users import update_locale

log = logging.getLogger("jangteo.web.account")


def _render(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    user = require_user(request)
    context = {
        "account": user,
        "languages": LANGUAGE_NAMES,
        "saved": request.query_params.get("saved") == "1" and error is None,
        "error": error,
    }
    return request.app.state.templates.TemplateResponse(request, "account/settings.html", context,
                                                        status_code=status_code)


@login_required
async def account_page(request: Request) -> Response:
    return _render(request)


@login_required
async def save_language(request: Request) -> Response:
    """Store the chosen locale and switch the pages to it (`?lang=` sets the page cookie)."""
    user = require_user(request)
    locale = (await request.form()).get("locale")
    if not is_locale(locale):
        return _render(request, error=INVALID_LOCALE_MSGID, status_code=422)
    updated = await update_locale(request.app.state.db, user.id, locale)
    if updated is None:
        # The row was deleted after the session loaded it, so there is no account to change.
        log.warning("locale not saved, user not found user_id=%s", user.id)
        return RedirectResponse("/login", status_code=303)
    request.state.session.set_user(updated)
    request.state.user = updated
    log.info("locale saved user_id=%s locale=%s", user.id, locale)
    return RedirectResponse(f"/account?saved=1&lang={locale}", status_code=303)


routes = [
    Route("/account", account_page, methods=["GET"], name="account"),
    Route("/account/language", save_language, methods=["POST"], name="account_language"),
]
