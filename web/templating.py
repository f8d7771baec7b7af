"""Jinja2 environments, one per locale, with gettext and the display filters.

Each locale gets its own environment with that locale's catalog installed, so
concurrent requests in different languages never share translation state. Pages
render through `templates.TemplateResponse(request, name, context)`, which picks
the environment from `request.state.locale`; workers and the websocket hub render
fragments without a request through `templates.render(name, locale, **context)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from engine.accounts import mask_name
from web.i18n import DEFAULT_LOCALE, LOCALES, format_kst, format_won, get_translations

TEMPLATES_DIR = Path(__file__).parent / "templates"

LANGUAGE_NAMES = {"ko": "한국어", "en": "English"}


def _request_context(request: Request) -> dict[str, Any]:
    session = getattr(request.state, "session", None)
    locale = getattr(request.state, "locale", DEFAULT_LOCALE)
    return {
        "user": getattr(request.state, "user", None),
        # Reading the token creates it, so every rendered page can post a form.
        "csrf_token": session.csrf_token if session is not None else "",
        "locale": locale,
        "other_locales": [(code, LANGUAGE_NAMES[code]) for code in LOCALES if code != locale],
    }


def build_environment(locale: str, directory: Path = TEMPLATES_DIR) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(get_translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["won"] = lambda amount: format_won(amount, locale)
    env.filters["kst"] = format_kst
    env.filters["masked"] = mask_name
    env.globals["locale"] = locale
    return env


class LocalizedTemplates:
    """A Jinja2Templates per locale behind one `TemplateResponse` and `render`."""

    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        self.by_locale: dict[str, Jinja2Templates] = {
            locale: Jinja2Templates(env=build_environment(locale, directory), context_processors=[_request_context])
            for locale in LOCALES
        }

    def env(self, locale: str) -> Environment:
        return self.by_locale[locale].env

    def TemplateResponse(  # noqa: N802 (Starlette's name)
        self,
        request: Request,
        name: str,
        context: dict[str, Any] | None = None,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        locale = getattr(request.state, "locale", DEFAULT_LOCALE)
        templates = self.by_locale.get(locale, self.by_locale[DEFAULT_LOCALE])
        return templates.TemplateResponse(request, name, context or {}, status_code=status_code, headers=headers)

    def render(self, name: str, locale: str = DEFAULT_LOCALE, **context: Any) -> str:
        """Render a template to a string without a request (fragments for pushes and mail)."""
        return self.env(locale).get_template(name).render(**context)
