"""Login, registration and logout pages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from web.errors import ERRORS, ApiError
from web.i18n import switch_locale
from web.ratelimit import check_rate, client_ip
from web.templating import LANGUAGE_NAMES
from web.users import EmailTakenError, RegistrationForm, authenticate, create_member, login_user, logout_user


def safe_next(target: object) -> str:
    """Return `target` if it is a local path, else "/" (no open redirect)."""
    if isinstance(target, str) and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


async def login_page(request: Request) -> Response:
    templates = request.app.state.templates
    if request.method == "GET":
        context = {"email": "", "next": safe_next(request.query_params.get("next")), "error": None}
        return templates.TemplateResponse(request, "auth/login.html", context)

    form = await request.form()
    email = _text(form.get("email")).strip()
    password = _text(form.get("password"))
    context = {"email": email, "next": safe_next(form.get("next")), "error": None}
    settings = request.app.state.settings
    try:
        await check_rate(request, "login_ip", settings.login_ip_rate, client_ip(request))
        await check_rate(request, "login", settings.login_rate, f"{client_ip(request)}|{email.lower()}")
    except ApiError as error:
        context["error"] = error.message(request.state.locale)
        return templates.TemplateResponse(request, "auth/login.html", context, status_code=error.status, headers=error.headers)

    user = await authenticate(request.app.state.db, email, password)
    if user is None:
        context["error"] = ApiError("invalid_credentials").message(request.state.locale)
        return templates.TemplateResponse(request, "auth/login.html", context, status_code=401)

    login_user(request, user)
    # The member's stored language replaces this browser's, so English members see
    # English on a new device. A later `?lang=` switches as usual.
    switch_locale(request, user.locale)
    return RedirectResponse(context["next"], status_code=303)


async def register_page(request: Request) -> Response:
    templates = request.app.state.templates
    if request.method == "GET":
        form = RegistrationForm("", "", "", locale=request.state.locale)
        return templates.TemplateResponse(request, "auth/register.html", {"form": form, "languages": LANGUAGE_NAMES})

    data = await request.form()
    form = RegistrationForm.from_values(
        data.get("email"), data.get("password"), data.get("display_name"), data.get("locale"),
        page_locale=request.state.locale,
    )
    context = {"form": form, "languages": LANGUAGE_NAMES}
    if not form.validate():
        return templates.TemplateResponse(request, "auth/register.html", context, status_code=422)
    try:
        user = await create_member(request.app.state.db, form)
    except EmailTakenError:
        form.errors["email"] = ERRORS["email_taken"].msgid
        return templates.TemplateResponse(request, "auth/register.html", context, status_code=409)

    login_user(request, user)
    # A language other than the page's also switches the pages (`?lang=` sets the page cookie).
    home = "/" if form.locale == request.state.locale else f"/?lang={form.locale}"
    return RedirectResponse(home, status_code=303)


async def logout(request: Request) -> Response:
    logout_user(request)
    return RedirectResponse("/", status_code=303)


routes = [
    Route("/login", login_page, methods=["GET", "POST"], name="login"),
    Route("/register", register_page, methods=["GET", "POST"], name="register"),
    Route("/logout", logout, methods=["POST"], name="logout"),
]
