"""The JSON error shape, the error-code registry and the OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

from web.errors import ERRORS, ApiError, register_error


async def test_api_404_error_shape(client: httpx.AsyncClient) -> None:
    """An unknown API path returns 404 with code, Korean and English message and detail."""
    response = await client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "detail"}
    assert body["error"]["code"] == "not_found"
    assert body["error"]["message"] == {
        "ko": "페이지나 항목을 찾을 수 없습니다.",
        "en": "The page or item was not found.",
    }
    assert body["error"]["detail"] == {}


async def test_api_invalid_json_rejected(client: httpx.AsyncClient) -> None:
    """A body that is not a JSON object returns 400 `invalid_json`."""
    token = (await client.get("/api/v1/session")).json()["csrf_token"]
    for body in (b"{not json", b"[1, 2]"):
        response = await client.post(
            "/api/v1/register", content=body, headers={"X-CSRF-Token": token, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "invalid_json", body


async def test_api_method_not_allowed(client: httpx.AsyncClient) -> None:
    """A method the path does not serve returns 405 as JSON."""
    response = await client.put("/api/v1/openapi.json")
    # PUT is unsafe, so the CSRF check rejects it first; safe methods reach the router's 405.
    assert response.status_code == 403
    response = await client.request("OPTIONS", "/api/v1/session")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_error_message_fills_placeholders() -> None:
    """Detail values fill `{name}` placeholders in both languages."""
    error = ApiError("rate_limited", retry_after_s=42)
    message = error.to_json()["error"]["message"]
    assert message["ko"] == "시도 횟수가 너무 많습니다. 42초 후에 다시 시도해 주세요."
    assert message["en"] == "Too many attempts. Please try again in 42 seconds."
    assert error.status == 429


def test_error_registry_rejects_conflicts() -> None:
    """Unknown codes raise, and a code cannot be registered twice with other values."""
    with pytest.raises(ValueError, match="unknown error code"):
        ApiError("no_such_code")
    with pytest.raises(ValueError, match="already registered"):
        register_error("not_found", 410, "Gone.")
    register_error("not_found", ERRORS["not_found"].status, ERRORS["not_found"].msgid)


async def test_openapi_lists_auth_routes(client: httpx.AsyncClient) -> None:
    """The OpenAPI document lists the session and registration operations and the error schema."""
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert set(paths["/api/v1/session"]) == {"get", "post", "delete"}
    assert "post" in paths["/api/v1/register"]
    register = paths["/api/v1/register"]["post"]
    assert register["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "email",
        "password",
        "display_name",
    ]
    assert register["parameters"] == [{"$ref": "#/components/parameters/CsrfToken"}]
    assert "201" in register["responses"]
    assert register["responses"]["default"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    error_schema = document["components"]["schemas"]["Error"]
    assert error_schema["properties"]["error"]["required"] == ["code", "message", "detail"]
    assert "csrf_failed" in error_schema["description"]
