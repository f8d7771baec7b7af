"""`/ws/pledges`: group-buy pledges over one websocket, for API clients that pledge often.

The pages and the JSON API pledge over HTTP: `POST /api/v1/campaigns/{id}/pledges`
sets a member's new total, and `DELETE /api/v1/campaigns/{id}/pledges/mine`
cancels it. This socket runs the same code per message as those routes
(`web.live.pledges.place_pledge`: signed-in check, rate limit per user, the
engine's checks, one call of pledge.lua, the up-front payment, the receipt),
without an HTTP request per pledge.

The handshake, the hello with the CSRF token, the acks, the frame checks and the
check that the session still exists are those of `web.api.ack_socket`. The commands:

- `{"type": "pledge", "campaign_id": N, "units": U, "client_id": C}` sets the
  member's total to `U` (a JSON integer or ASCII digits, as over HTTP; 0 cancels);
- `{"type": "cancel", "campaign_id": N, "client_id": C}` sets it to 0. As with the
  DELETE route, `client_id` may be left out: the cancellation then gets a fresh
  one, and sending it again is rejected with `no_pledge`.

An accepted command is acked with `"receipt"`, `"pay_at_most_won"`,
`"payment_id"` and `"live"` as the HTTP routes return them. A rejection carries the
HTTP route's error body, with the units left where they matter.
`pledge_not_confirmed` means the pledge may or may not have been applied: send it
again with the same client id. A `campaign_id` that is not an integer in
1..2^63-1 is acked with `campaign_not_found`.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from web.api.ack_socket import serve_ack_socket
from web.api.campaigns import pledge_accepted_json
from web.errors import ApiError
from web.ids import is_row_id
from web.live.pledges import place_pledge
from web.sessions import SessionCheck


async def pledge_socket(websocket: WebSocket) -> None:
    await serve_ack_socket(websocket, COMMANDS, expected="pledge or cancel message")


async def _pledge(websocket: WebSocket, message: dict[str, Any], check: SessionCheck) -> dict[str, Any]:
    campaign_id = _campaign_id(message)
    accepted = await place_pledge(websocket, campaign_id, message.get("units"), message.get("client_id"),  # type: ignore[arg-type]
                                  session_check=check)
    return pledge_accepted_json(accepted)


async def _cancel(websocket: WebSocket, message: dict[str, Any], check: SessionCheck) -> dict[str, Any]:
    campaign_id = _campaign_id(message)
    client_id = message["client_id"] if "client_id" in message else secrets.token_urlsafe(16)
    accepted = await place_pledge(websocket, campaign_id, 0, client_id, session_check=check)  # type: ignore[arg-type]
    return pledge_accepted_json(accepted)


def _campaign_id(message: dict[str, Any]) -> int:
    campaign_id = message.get("campaign_id")
    if not is_row_id(campaign_id):
        raise ApiError("campaign_not_found")
    return campaign_id  # type: ignore[return-value]  (is_row_id checked the type)


COMMANDS = {"pledge": _pledge, "cancel": _cancel}

routes = [WebSocketRoute("/ws/pledges", pledge_socket, name="pledge_socket")]
