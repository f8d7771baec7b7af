"""CSRF tokens, the body size limit, role guards and the websocket Origin check."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.config import Settings
from tests.web.conftest import api_csrf, page_csrf, register_via_api, unique_email
from web.security import origin_allowed, require_role


async def _count_users(app: Starlette, email: str) -> int:
    return await app.state.db.fetchval("SELECT count(*) FROM users WHERE lower(email) = lower($1)", email)


async def test_csrf_missing_on_page_form_rejected(app: Starlette, client: httpx.AsyncClient) -> None:
    """A registration form posted without its token returns 403 in Korean and writes nothing."""
    await page_csrf(client, "/register")
    email = unique_email("nocsrf")
    response = await client.post(
        "/register", data={"email": email, "password": "long-enough", "display_name": "홍길동"}
    )
    assert response.status_code == 403
    assert "보안 토큰이 없거나 만료되었습니다." in response.text
    assert await _count_users(app, email) == 0


async def test_csrf_wrong_token_on_api_rejected(app: Starlette, client: httpx.AsyncClient) -> None:
    """An API request with a token of another session returns 403 `csrf_failed` and writes nothing."""
    await api_csrf(client)
    other_token = "A" * 43
    email = unique_email("badcsrf")
    response = await client.post(
        "/api/v1/register",
        json={"email": email, "password": "long-enough", "display_name": "홍길동"},
        headers={"X-CSRF-Token": other_token},
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "csrf_failed"
    assert error["message"]["ko"].startswith("보안 토큰이")
    assert await _count_users(app, email) == 0


async def test_csrf_without_session_rejected(client: httpx.AsyncClient) -> None:
    """A POST from a client that never got a session returns 403 even with a token."""
    response = await client.post("/api/v1/session", json={}, headers={"X-CSRF-Token": "A" * 43})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


async def test_csrf_token_in_multipart_form_accepted(app: Starlette, client: httpx.AsyncClient) -> None:
    """The token is also read from a multipart form, and the endpoint still gets the whole form."""
    token = await page_csrf(client, "/register")
    email = unique_email("multipart")
    fields = {"csrf_token": token, "email": email, "password": "long-enough", "display_name": "홍길동"}
    response = await client.post("/register", files={name: (None, value) for name, value in fields.items()})
    assert response.status_code == 303
    assert await _count_users(app, email) == 1


async def test_body_over_limit_rejected_by_content_length(settings: Settings, client: httpx.AsyncClient) -> None:
    """A declared body over max_body_bytes answers 413 before the CSRF check or the endpoint."""
    token = await api_csrf(client)
    body = b"x" * (settings.max_body_bytes + 1)
    response = await client.post(
        "/api/v1/register", content=body, headers={"X-CSRF-Token": token, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "body_too_large"
    assert error["detail"]["limit_bytes"] == settings.max_body_bytes


async def test_body_over_limit_rejected_while_streaming(settings: Settings, client: httpx.AsyncClient) -> None:
    """A chunked body without Content-Length is counted as it arrives and answered 413 past the limit."""
    await page_csrf(client, "/register")
    chunk = b"a=" + b"x" * 1022

    async def chunks():
        for _ in range(settings.max_body_bytes // len(chunk) + 2):
            yield chunk

    response = await client.post(
        "/register", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert "요청이 너무 큽니다" in response.text


async def test_member_on_staff_page_forbidden(app: Starlette, client: httpx.AsyncClient) -> None:
    """A member gets 403 on the staff console; an anonymous visitor is sent to the login form."""
    anonymous = await client.get("/staff")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Fstaff"

    await register_via_api(client, unique_email("member"))
    response = await client.get("/staff")
    assert response.status_code == 403
    assert "이 작업을 할 권한이 없습니다." in response.text


async def test_staff_on_staff_page_allowed(app: Starlette, client: httpx.AsyncClient) -> None:
    """A staff account signed in after its role was set opens the staff console."""
    email = unique_email("staff")
    await register_via_api(client, email, "sesame-street")
    await app.state.db.execute("UPDATE users SET role = 'staff' WHERE email = $1", email)
    token = await api_csrf(client)
    await client.delete("/api/v1/session", headers={"X-CSRF-Token": token})
    token = await api_csrf(client)
    response = await client.post(
        "/api/v1/session", json={"email": email, "password": "sesame-street"}, headers={"X-CSRF-Token": token}
    )
    assert response.json()["user"]["role"] == "staff"

    page = await client.get("/staff")
    assert page.status_code == 200
    assert "운영 콘솔" in page.text


async def test_api_guard_answers_401_and_403_as_json(app: Starlette, settings: Settings) -> None:
    """An API route behind require_role answers 401 to anonymous clients and 403 to members, as JSON."""
    staff_only = require_role("staff")

    async def endpoint(request: Request) -> JSONResponse:
        user = staff_only(request)
        return JSONResponse({"id": user.id})

    route = Route("/api/v1/test-staff-only", endpoint, methods=["GET"])
    app.router.routes.insert(0, route)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as browser:
            anonymous = await browser.get("/api/v1/test-staff-only")
            assert anonymous.status_code == 401
            assert anonymous.json()["error"]["code"] == "not_authenticated"

            await register_via_api(browser, unique_email("guard"))
            member = await browser.get("/api/v1/test-staff-only")
            assert member.status_code == 403
            assert member.json()["error"]["code"] == "forbidden"
    finally:
        app.router.routes.remove(route)


def test_origin_allowed_table(settings: Settings) -> None:
    """Only the configured origins pass; a missing, foreign or look-alike Origin fails."""
    cases = [
        ({"origin": f"http://127.0.0.1:{settings.port}"}, True),
        ({"origin": f"http://localhost:{settings.port}"}, True),
        ({"origin": settings.base_url + "/"}, True),
        ({"origin": "https://evil.example"}, False),
        ({"origin": f"http://127.0.0.1:{settings.port}.evil.example"}, False),
        ({"origin": "null"}, False),
        ({}, False),
    ]
    for headers, expected in cases:
        assert origin_allowed(headers, settings) is expected, headers

    extended = settings.model_copy(update={"allowed_origins": ["https://market.example"]})
    assert origin_allowed({"origin": "https://market.example"}, extended) is True


def test_public_url_drops_local_origins(settings: Settings) -> None:
    """With a public URL set, only it (and allowed_origins) pass; localhost and 127.0.0.1 no longer do."""
    public = settings.model_copy(update={"public_url": "https://market.example"})

    assert origin_allowed({"origin": "https://market.example"}, public) is True
    assert origin_allowed({"origin": f"http://localhost:{settings.port}"}, public) is False
    assert origin_allowed({"origin": f"http://127.0.0.1:{settings.port}"}, public) is False
    listed = public.model_copy(update={"allowed_origins": [f"http://127.0.0.1:{settings.port}"]})
    assert origin_allowed({"origin": f"http://127.0.0.1:{settings.port}"}, listed) is True
