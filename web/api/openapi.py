"""The OpenAPI 3.1 document of `/api/v1`, built from a registry of operations.

Each API module calls `register_operation()` (or uses `api_route()` from
`web.api`) for every route it serves, with JSON Schemas (plain dicts) for the
request body and the responses. Every operation gets the shared error response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from web.errors import ERRORS

API_PREFIX = "/api/v1"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "detail"],
            "properties": {
                "code": {"type": "string", "description": "Stable error code, for example csrf_failed."},
                "message": {
                    "type": "object",
                    "required": ["ko", "en"],
                    "properties": {"ko": {"type": "string"}, "en": {"type": "string"}},
                },
                "detail": {"type": "object", "additionalProperties": True},
            },
        }
    },
}

USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "email", "display_name", "role", "supplier_id", "status", "locale"],
    "properties": {
        "id": {"type": "integer"},
        "email": {"type": "string", "format": "email"},
        "display_name": {"type": "string"},
        "role": {"type": "string", "enum": ["member", "coordinator", "supplier", "staff"]},
        "supplier_id": {"type": ["integer", "null"]},
        "status": {"type": "string", "enum": ["active", "suspended"]},
        "locale": {"type": "string", "enum": ["ko", "en"]},
    },
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # relative to API_PREFIX, with {param} placeholders
    summary: str
    request_schema: dict[str, Any] | None = None
    responses: dict[int, dict[str, Any]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    requires_csrf: bool = False
    takes_idempotency_key: bool = False


OPERATIONS: dict[tuple[str, str], Operation] = {}


def register_operation(operation: Operation) -> None:
    """Add `operation` to the document; the same method and path twice raises ValueError."""
    key = (operation.method.upper(), operation.path)
    if key in OPERATIONS and OPERATIONS[key] != operation:
        raise ValueError(f"operation {key} is already registered")
    OPERATIONS[key] = operation


def build_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), operation in sorted(OPERATIONS.items(), key=lambda item: (item[0][1], item[0][0])):
        responses: dict[str, Any] = {
            str(status): {
                "description": "Success" if status < 400 else "Error",
                "content": {"application/json": {"schema": schema}},
            }
            for status, schema in operation.responses.items()
        }
        responses["default"] = {
            "description": "Error; `error.code` is one of the codes in components.schemas.Error.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        entry: dict[str, Any] = {"summary": operation.summary, "responses": responses}
        if operation.tags:
            entry["tags"] = list(operation.tags)
        if operation.request_schema is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": operation.request_schema}},
            }
        parameters = []
        if operation.requires_csrf:
            parameters.append({"$ref": "#/components/parameters/CsrfToken"})
        if operation.takes_idempotency_key:
            parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
        if parameters:
            entry["parameters"] = parameters
        paths.setdefault(API_PREFIX + path, {})[method.lower()] = entry

    error_schema = {**ERROR_SCHEMA, "description": "Error codes: " + ", ".join(sorted(ERRORS))}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Jangteo API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {"Error": error_schema, "User": USER_SCHEMA},
            "parameters": {
                "CsrfToken": {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": True,
                    "description": "The session's CSRF token, from GET /api/v1/session.",
                    "schema": {"type": "string"},
                },
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": (
                        "A client-chosen key, unique per request you mean to make once. A retry with the same key"
                        " and the same method, path and body returns the first response (status and body, with"
                        " Idempotent-Replayed: true) without doing the work again. The same key with another"
                        " request is rejected with 422 idempotency_key_reused, and a retry while the first"
                        " request still runs with 409 idempotency_key_in_progress. Keys are per user;"
                        " anonymous requests ignore the header."
                    ),
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_:.-]{1,128}$"},
                },
            },
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "jt_session"}},
        },
    }


async def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(build_document())
