"""Registration, login and logout through the pages and the JSON API."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from tests.web.conftest import api_csrf, page_csrf, register_via_api, start_app, unique_email
from web.sessions import SESSION_COOKIE


async def _count_users(app: Starlette, email: str) -> int:
    return await app.state.db.fetchval("SELECT count(*) FROM users WHERE lower(email) = lower($1)", email)


async def test_page_register_login_logout_round_trip(app: Starlette, client: httpx.AsyncClient) -> None:
    """A visitor registers, is signed in, logs out and logs in again with the same password."""
    email = unique_email("round")
    token = await page_csrf(client, "/register")
    response = await client.post(
        "/register",
        data={"csrf_token": token, "email": email, "password": "sesame-street", "display_name": "김민수"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    row = await app.state.db.fetchrow("SELECT role, display_name FROM users WHERE email = $1", email)
    assert row["role"] == "member"
    assert row["display_name"] == "김민수"

    home = await client.get("/")
    assert "김민수 님 로그인 중" in home.text
    assert "로그아웃" in home.text

    token = await page_csrf(client, "/")
    response = await client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    home = await client.get("/")
    assert "김민수 님 로그인 중" not in home.text
    assert 'href="/login"' in home.text

    token = await page_csrf(client, "/login")
    response = await client.post(
        "/login", data={"csrf_token": token, "email": email.upper(), "password": "sesame-street", "next": "/staff"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/staff"
    assert "김민수 님 로그인 중" in (await client.get("/")).text


async def test_login_rotates_session_id(app: Starlette, client: httpx.AsyncClient) -> None:
    """Logging in replaces the session id and deletes the anonymous session from Redis."""
    email = unique_email("rotate")
    await register_via_api(client, email, "sesame-street")
    await client.delete("/api/v1/session", headers={"X-CSRF-Token": await api_csrf(client)})

    token = await page_csrf(client, "/login")
    before = client.cookies[SESSION_COOKIE]
    response = await client.post("/login", data={"csrf_token": token, "email": email, "password": "sesame-street"})
    assert response.status_code == 303
    after = client.cookies[SESSION_COOKIE]
    assert after != before
    assert await app.state.redis.exists(app.state.keys.session(before)) == 0
    assert await app.state.redis.exists(app.state.keys.session(after)) == 1


async def test_login_wrong_password_rejected(client: httpx.AsyncClient) -> None:
    """A wrong password re-renders the form with 401 and a Korean message, and leaves the session anonymous."""
    email = unique_email("wrong")
    await register_via_api(client, email, "sesame-street")
    await client.delete("/api/v1/session", headers={"X-CSRF-Token": await api_csrf(client)})

    token = await page_csrf(client, "/login")
    response = await client.post("/login", data={"csrf_token": token, "email": email, "password": "not-the-one"})
    assert response.status_code == 401
    assert "이메일 또는 비밀번호가 올바르지 않습니다." in response.text
    assert f'value="{email}"' in response.text
    session = (await client.get("/api/v1/session")).json()
    assert session["user"] is None


async def test_login_unknown_email_rejected_like_wrong_password(client: httpx.AsyncClient) -> None:
    """An unknown email gets the same 401 response as a wrong password."""
    token = await api_csrf(client)
    response = await client.post(
        "/api/v1/session", json={"email": unique_email("ghost"), "password": "whatever1"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


async def test_register_invalid_fields_write_nothing(app: Starlette, client: httpx.AsyncClient) -> None:
    """Invalid registration fields re-render the form with Korean errors and insert no row."""
    cases = [
        ({"email": "not-an-email", "password": "long-enough", "display_name": "홍길동"}, "올바른 이메일 주소를 입력해 주세요"),
        ({"email": unique_email("short"), "password": "short", "display_name": "홍길동"}, "비밀번호는 8자 이상이어야 합니다."),
        ({"email": unique_email("noname"), "password": "long-enough", "display_name": "   "}, "표시 이름을 입력해 주세요."),
        ({"email": unique_email("longname"), "password": "long-enough", "display_name": "가" * 31}, "표시 이름은 30자 이하여야 합니다."),
    ]
    for fields, message in cases:
        token = await page_csrf(client, "/register")
        response = await client.post("/register", data={"csrf_token": token, **fields})
        assert response.status_code == 422, fields
        assert message in response.text, fields
        assert 'aria-invalid="true"' in response.text
        assert await _count_users(app, fields["email"]) == 0, fields


async def test_register_duplicate_email_rejected(app: Starlette, client: httpx.AsyncClient) -> None:
    """Registering an email again (in other letter case) returns 409 and keeps one row."""
    email = unique_email("dup")
    await register_via_api(client, email)
    token = await page_csrf(client, "/register")
    response = await client.post(
        "/register", data={"csrf_token": token, "email": email.upper(), "password": "long-enough", "display_name": "둘째"}
    )
    assert response.status_code == 409
    assert "이미 가입된 이메일 주소입니다." in response.text
    assert await _count_users(app, email) == 1


async def test_api_session_round_trip(client: httpx.AsyncClient) -> None:
    """The API registers, reports, ends and restores a session, with a CSRF token each time."""
    email = unique_email("api")
    registered = await register_via_api(client, email, "sesame-street", "Alice")
    assert registered["user"]["email"] == email
    assert registered["user"]["role"] == "member"
    assert registered["csrf_token"]

    current = (await client.get("/api/v1/session")).json()
    assert current["user"]["display_name"] == "Alice"

    response = await client.delete("/api/v1/session", headers={"X-CSRF-Token": current["csrf_token"]})
    assert response.status_code == 200
    assert response.json()["user"] is None
    new_token = response.json()["csrf_token"]
    assert new_token != current["csrf_token"]

    response = await client.post(
        "/api/v1/session", json={"email": email, "password": "sesame-street"}, headers={"X-CSRF-Token": new_token}
    )
    assert response.status_code == 200
    assert response.json()["user"]["email"] == email


async def test_api_register_validation_error_shape(client: httpx.AsyncClient) -> None:
    """An invalid API registration returns 422 with a message per field in both languages."""
    token = await api_csrf(client)
    response = await client.post(
        "/api/v1/register",
        json={"email": "x", "password": "1234", "display_name": ""},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert set(error["detail"]["fields"]) == {"email", "password", "display_name"}
    assert error["detail"]["fields"]["password"]["message"]["ko"] == "비밀번호는 8자 이상이어야 합니다."
    assert error["detail"]["fields"]["password"]["message"]["en"] == "The password must be at least 8 characters long."


async def test_api_register_rejects_unsendable_email(app: Starlette, client: httpx.AsyncClient) -> None:
    """An address the mail outbox cannot send to is rejected at registration (422) and stores no row."""
    for email in ('x"y@example.com', "a<b@example.com", "a,b@example.com", "a:b@example.com", "a(b)@example.com"):
        token = await api_csrf(client)
        response = await client.post(
            "/api/v1/register",
            json={"email": email, "password": "long-enough", "display_name": "홍길동"},
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 422, email
        assert set(response.json()["error"]["detail"]["fields"]) == {"email"}, email
        assert await _count_users(app, email) == 0, email


async def test_login_rate_limit_per_address(settings) -> None:
    """After `login_ip_rate` attempts from one address, a login for yet another email answers 429."""
    limited = settings.model_copy(update={"login_ip_rate": "3/minute", "login_rate": "100/minute"})
    async for app in start_app(limited):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
            token = await api_csrf(browser)
            for _ in range(3):
                response = await browser.post(
                    "/api/v1/session", json={"email": unique_email("spray"), "password": "wrong-pass"},
                    headers={"X-CSRF-Token": token},
                )
                assert response.status_code == 401
            response = await browser.post(
                "/api/v1/session", json={"email": unique_email("spray"), "password": "wrong-pass"},
                headers={"X-CSRF-Token": token},
            )
            assert response.status_code == 429
            assert response.json()["error"]["code"] == "rate_limited"
            form_token = await page_csrf(browser, "/login")
            page = await browser.post(
                "/login", data={"csrf_token": form_token, "email": unique_email("spray"), "password": "wrong-pass"}
            )
            assert page.status_code == 429


async def test_login_rate_limit_page_and_api(settings, client: httpx.AsyncClient) -> None:
    """After `login_rate` attempts for one address and email, the next answers 429 with Retry-After."""
    limited = settings.model_copy(update={"login_rate": "3/minute"})
    async for app in start_app(limited):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
            email = unique_email("limit")
            for _ in range(3):
                token = await page_csrf(browser, "/login")
                response = await browser.post("/login", data={"csrf_token": token, "email": email, "password": "wrong-pass"})
                assert response.status_code == 401
            token = await page_csrf(browser, "/login")
            response = await browser.post("/login", data={"csrf_token": token, "email": email, "password": "wrong-pass"})
            assert response.status_code == 429
            assert int(response.headers["retry-after"]) >= 1
            assert "시도 횟수가 너무 많습니다." in response.text

            api_token = await api_csrf(browser)
            response = await browser.post(
                "/api/v1/session", json={"email": email, "password": "wrong-pass"}, headers={"X-CSRF-Token": api_token}
            )
            assert response.status_code == 429
            assert response.json()["error"]["code"] == "rate_limited"
            assert "retry-after" in response.headers

            # Another email from the same address still gets through to the password check.
            response = await browser.post(
                "/api/v1/session",
                json={"email": unique_email("other"), "password": "wrong-pass"},
                headers={"X-CSRF-Token": api_token},
            )
            assert response.status_code == 401
