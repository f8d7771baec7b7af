"""The JSON API under `/api/v1`: route registration, JSON helpers and the route list.

An API module keeps an `ApiRoutes` list and declares each endpoint with
`@routes.route(method, path, summary=..., request_schema=..., responses=...)`, which
also registers it in the OpenAPI document. Add the module's list in `api_routes()`.
Unsafe methods need the CSRF token in `X-CSRF-Token` (see `web.csrf`) and accept an
`Idempotency-Key` header (see `web.idempotency`) unless declared `idempotent=False`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from web.api.openapi import Operation, openapi_document, register_operation
from web.csrf import UNSAFE_METHODS
from web.errors import ApiError
from web.idempotency import idempotent as with_idempotency_key

Endpoint = Callable[[Request], Awaitable[Response]]


class ApiRoutes(list[BaseRoute]):
    """The routes of one API area; `route()` adds a route and its OpenAPI entry."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        request_schema: dict[str, Any] | None = None,
        responses: dict[int, dict[str, Any]] | None = None,
        idempotent: bool = True,
    ) -> Callable[[Endpoint], Endpoint]:
        """Register an endpoint; `idempotent=False` opts an unsafe route out of `Idempotency-Key`."""
        method = method.upper()
        takes_key = idempotent and method in UNSAFE_METHODS

        def decorate(endpoint: Endpoint) -> Endpoint:
            register_operation(
                Operation(
                    method=method,
                    path=path,
                    summary=summary,
                    request_schema=request_schema,
                    responses=responses or {},
                    tags=(self.tag,),
                    requires_csrf=method in UNSAFE_METHODS,
                    takes_idempotency_key=takes_key,
                )
            )
            handler = with_idempotency_key(endpoint) if takes_key else endpoint
            self.append(Route(path, handler, methods=[method]))
            return endpoint

        return decorate


async def read_json(request: Request) -> dict[str, Any]:
    """Parse the body as a JSON object; raise 400 `invalid_json` otherwise."""
    body = await request.body()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError("invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError("invalid_json", expected="object")
    return data


def json_response(data: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status_code)


def api_routes() -> list[BaseRoute]:
    """List every route under /api/v1 (mounted by `web.app.create_app`)."""
    from web.api import auth, lots  # imported here: API modules import this package
    from web.api import complex as complex_orders
    from web.api import campaigns, pledge_payments, users

    return [
        Route("/openapi.json", openapi_document, methods=["GET"]),
        *auth.routes,
        *lots.routes,
        *complex_orders.routes,
        *campaigns.routes,
        *pledge_payments.routes,
        *users.routes,
    ]
