"""`/ws/bids`: bids over one websocket, for API clients that bid often.

The pages bid over HTTP (`POST /api/v1/lots/{id}/bids`), so a bid typed while
offline is never replayed. This socket runs the same code per bid as that route
(`web.live.bids.place_bid`: signed-in check, rate limit per user, the engine's
checks, one Lua script call, the receipt), without an HTTP request per bid.

The handshake, the hello with the CSRF token, the acks, the frame checks and the
check that the session still exists are those of `web.api.ack_socket`. The
commands are `{"type": "bid", "lot_id": N, "amount_won": A, "client_id": C}` and
`{"type": "buy_now", "lot_id": N, "client_id": C}`. An accepted one is acked with
`"receipt"` and `"live"` as the HTTP route returns them. `not_confirmed` means the
bid may or may not have been applied: send it again with the same client id. A
`lot_id` that is not an integer in 1..2^63-1 is acked with `not_found`.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from web.api.ack_socket import serve_ack_socket
from web.api.lots import live_json
from web.errors import ApiError
from web.ids import is_row_id
from web.live.bids import BidAccepted, place_bid, place_buy_now
from web.sessions import SessionCheck


async def bid_socket(websocket: WebSocket) -> None:
    await serve_ack_socket(websocket, COMMANDS, expected="bid or buy_now message")


async def _bid(websocket: WebSocket, message: dict[str, Any], check: SessionCheck) -> dict[str, Any]:
    lot_id = _lot_id(message)
    accepted = await place_bid(websocket, lot_id, message.get("amount_won"), message.get("client_id"),  # type: ignore[arg-type]
                               session_check=check)
    return _accepted_json(accepted)


async def _buy_now(websocket: WebSocket, message: dict[str, Any], check: SessionCheck) -> dict[str, Any]:
    lot_id = _lot_id(message)
    accepted = await place_buy_now(websocket, lot_id, message.get("client_id"), session_check=check)  # type: ignore[arg-type]
    return _accepted_json(accepted)


def _lot_id(message: dict[str, Any]) -> int:
    lot_id = message.get("lot_id")
    if not is_row_id(lot_id):
        raise ApiError("not_found")
    return lot_id  # type: ignore[return-value]  (is_row_id checked the type)


def _accepted_json(accepted: BidAccepted) -> dict[str, Any]:
    return {
        # orjson writes a dataclass as an object of its fields, as `asdict` would, but faster.
        "receipt": accepted.receipt,
        "live": live_json(accepted.snapshot) if accepted.snapshot else None,
    }


COMMANDS = {"bid": _bid, "buy_now": _buy_now}

routes = [WebSocketRoute("/ws/bids", bid_socket, name="bid_socket")]
