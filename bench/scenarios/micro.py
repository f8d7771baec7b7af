"""In-process micro-benchmarks: orjson against the standard json module on the bid path's JSON.

The bid path decodes one script reply and encodes one ack per bid; both are timed
here with `timeit` on a real reply of bid.lua and the ack `/ws/bids` sends for it.
"""

from __future__ import annotations

import json
import timeit
from typing import Any

import orjson

SCRIPT_REPLY = (
    b'{"ok":true,"receipt":{"receipt_id":"100001-42","lot_id":100001,"seq":42,"kind":"bid",'
    b'"amount_won":3050000,"price_won":3020000,"leading":true,"end_ms":1796501189513,'
    b'"server_ms":1796414789514},"snapshot":{"lot_id":100001,"seq":42,"status":"open",'
    b'"price_won":3020000,"bid_count":42,"leader_id":17,"leader_masked":"\xec\x9e\x85*\xec\x9e\x90",'
    b'"end_ms":1796501189513,"start_ms":1796414729513,"server_ms":1796414789514,'
    b'"min_next_won":3040000,"reserve_met":null,"buy_now_won":null}}'
)


def _per_call_us(function: Any, number: int) -> float:
    best = min(timeit.repeat(function, number=number, repeat=5))
    return best / number * 1e6


def measure_json(number: int = 20_000) -> dict[str, Any]:
    reply = orjson.loads(SCRIPT_REPLY)
    ack = {"type": "ack", "client_id": "abc123", "accepted": True, "receipt": reply["receipt"], "live": reply["snapshot"]}
    results = {
        "orjson_decode_us": _per_call_us(lambda: orjson.loads(SCRIPT_REPLY), number),
        "json_decode_us": _per_call_us(lambda: json.loads(SCRIPT_REPLY), number),
        "orjson_encode_us": _per_call_us(lambda: orjson.dumps(ack), number),
        "json_encode_us": _per_call_us(lambda: json.dumps(ack, ensure_ascii=False).encode(), number),
    }
    rounded = {name: round(value, 3) for name, value in results.items()}
    rounded["json_over_orjson"] = round(
        (results["json_decode_us"] + results["json_encode_us"]) / (results["orjson_decode_us"] + results["orjson_encode_us"]), 2
    )
    return rounded
