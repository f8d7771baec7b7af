"""Error codes, the `ApiError` exception and the handlers that render errors.

Every error a client can see has a stable code registered here with its HTTP status
and an English msgid. The Korean text comes from the ko catalog. The API responds with

    {"error": {"code": "csrf_failed", "message": {"ko": "...", "en": "..."}, "detail": {}}}

and pages render `error.html` in the request's locale. Other modules add their codes
with `register_error()` at import time and add the msgid to both catalogs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from web.i18n import DEFAULT_LOCALE, N_, format_message, gettext, translate_all

log = logging.getLogger("jangteo.web.errors")


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    msgid: str


ERRORS: dict[str, ErrorSpec] = {}


def register_error(code: str, status: int, msgid: str) -> None:
    """Register an error code; registering one code with other values raises ValueError."""
    spec = ErrorSpec(status, msgid)
    existing = ERRORS.get(code)
    if existing is not None and existing != spec:
        raise ValueError(f"error code {code!r} is already registered as {existing}, not {spec}")
    ERRORS[code] = spec


for _code, _status, _msgid in (
    ("bad_request", 400, N_("The request is invalid.")),
    ("invalid_json", 400, N_("The request body is not valid JSON.")),
    ("not_authenticated", 401, N_("Please log in to continue.")),
    ("invalid_credentials", 401, N_("The email or password is incorrect.")),
    ("forbidden", 403, N_("You do not have permission to do this.")),
    ("account_suspended", 403, N_("This account is suspended. Please contact the help desk.")),
    ("csrf_failed", 403, N_("The security token of this form is missing or expired. Reload the page and try again.")),
    ("origin_not_allowed", 403, N_("Requests from this origin are not allowed.")),
    ("not_found", 404, N_("The page or item was not found.")),
    ("method_not_allowed", 405, N_("This method is not allowed here.")),
    ("email_taken", 409, N_("This email address is already registered.")),
    ("body_too_large", 413, N_("The request is too large (limit {limit_bytes} bytes).")),
    ("validation_failed", 422, N_("Some fields are invalid. Please check them and try again.")),
    ("rate_limited", 429, N_("Too many attempts. Please try again in {retry_after_s} seconds.")),
    ("internal_error", 500, N_("Something went wrong on our side. Please try again shortly.")),
    ("service_unavailable", 503, N_("The service is temporarily unavailable. Please try again shortly.")),
):
    register_error(_code, _status, _msgid)


class ApiError(Exception):
    """An error with a registered code; raise it from any page or API handler.

    Keyword arguments become the error's `detail` and fill `{name}` placeholders in
    the message. The handler responds with JSON under `/api/` and with an error page elsewhere.
    """

    def __init__(
        self,
        code: str,
        status: int | None = None,
        *,
        headers: dict[str, str] | None = None,
        **detail: Any,
    ) -> None:
        spec = ERRORS.get(code)
        if spec is None:
            raise ValueError(f"unknown error code {code!r}; register it with register_error() first")
        super().__init__(code)
        self.code = code
        self.status = status or spec.status
        self.msgid = spec.msgid
        self.headers = headers or {}
        self.detail = detail

    def message(self, locale: str = DEFAULT_LOCALE) -> str:
        return format_message(gettext(locale, self.msgid), self.detail)

    def to_json(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": translate_all(self.msgid, **self.detail),
                "detail": self.detail,
            }
        }


def api_error(code: str, status: int | None = None, **detail: Any) -> JSONResponse:
    """Return the JSON error response for `code`, for handlers that return instead of raise."""
    error = ApiError(code, status, **detail)
    return JSONResponse(error.to_json(), status_code=error.status)


# -- rendering ---------------------------------------------------------------------

def wants_json(connection: HTTPConnection) -> bool:
    """Return whether an error for this request is rendered as JSON rather than a page."""
    if connection.url.path.startswith("/api/"):
        return True
    accept = connection.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_response(request: Request, error: ApiError) -> Response:
    """Render `error` as JSON (API) or as the error page in the request's locale."""
    headers = dict(error.headers)
    if wants_json(request):
        return JSONResponse(error.to_json(), status_code=error.status, headers=headers)

    if error.status == 401:
        # Pages send an anonymous visitor to the login form and back afterwards.
        target = "/login?next=" + _quote_next(request)
        if request.headers.get("hx-request") == "true":
            headers["HX-Redirect"] = target
            return Response(status_code=401, headers=headers)
        return RedirectResponse(target, status_code=303, headers=headers)

    locale = getattr(request.state, "locale", DEFAULT_LOCALE)
    templates = getattr(request.app.state, "templates", None)
    message = error.message(locale)
    if templates is None:
        return PlainTextResponse(message, status_code=error.status, headers=headers)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"error": error, "error_message": message},
        status_code=error.status,
        headers=headers,
    )


def render_form_page(request: Request, template: str, context: dict[str, Any], error: ApiError | None) -> Response:
    """Render a page whose form may have failed: `error_code` and `error_message` join the context.

    Both are None without an error. The response carries the error's status, else 200.
    """
    locale = getattr(request.state, "locale", DEFAULT_LOCALE)
    context["error_code"] = error.code if error else None
    context["error_message"] = error.message(locale) if error else None
    return request.app.state.templates.TemplateResponse(
        request, template, context, status_code=error.status if error else 200
    )


def _quote_next(request: Request) -> str:
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return quote(path, safe="")


# Error codes for the HTTPExceptions Starlette raises itself (router 404 and 405, form parsing).
_HTTP_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    503: "service_unavailable",
}


async def handle_api_error(request: Request, exc: ApiError) -> Response:
    return error_response(request, exc)


async def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    code = _HTTP_STATUS_CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error")
    error = ApiError(code, exc.status_code, headers=dict(exc.headers or {}))
    return error_response(request, error)


async def handle_server_error(request: Request, exc: Exception) -> Response:
    log.error("request failed method=%s path=%s error=%s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    error = ApiError("internal_error")
    try:
        return error_response(request, error)
    except Exception:  # the error page itself failed; fall back to plain text
        log.exception("error page failed path=%s", request.url.path)
        return PlainTextResponse(error.message(DEFAULT_LOCALE), status_code=500)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: handle_api_error,
    HTTPException: handle_http_exception,
    Exception: handle_server_error,
}
