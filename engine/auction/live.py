"""The live state of auction lots in Redis, changed only through the Lua scripts.

`AuctionLive` is what the web process and the workers call. Every method that
changes a lot is one script call; the reply carries the lot's snapshot, so callers
never read state separately after writing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import orjson
from redis.asyncio import Redis

from engine.auction.acks import AckMarks
from engine.auction.batching import Script, ScriptBatcher
from engine.auction.rules import DEFAULT_INCREMENTS, increment_for, validate_increments
from engine.keys import Keys

_LUA_DIR = Path(__file__).parent / "lua"
BID_SCRIPT = Script((_LUA_DIR / "bid.lua").read_text(encoding="utf-8"))
LOAD_SCRIPT = Script((_LUA_DIR / "load.lua").read_text(encoding="utf-8"))
CLOSE_SCRIPT = Script((_LUA_DIR / "close.lua").read_text(encoding="utf-8"))
ADMIN_SCRIPT = Script((_LUA_DIR / "admin.lua").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Snapshot:
    """Public state of a lot for every watcher (the leader's id is for private notices only)."""

    lot_id: int
    seq: int
    status: str
    price_won: int
    bid_count: int
    leader_id: int | None
    leader_masked: str
    end_ms: int
    start_ms: int
    server_ms: int
    min_next_won: int
    reserve_met: bool | None
    buy_now_won: int | None

    @classmethod
    def from_reply(cls, data: dict[str, Any]) -> "Snapshot":
        return cls(
            lot_id=int(data["lot_id"]),
            seq=int(data["seq"]),
            status=data["status"],
            price_won=int(data["price_won"]),
            bid_count=int(data["bid_count"]),
            leader_id=int(data["leader_id"]) or None,
            leader_masked=data.get("leader_masked") or "",
            end_ms=int(data["end_ms"]),
            start_ms=int(data.get("start_ms") or 0),
            server_ms=int(data["server_ms"]),
            min_next_won=int(data.get("min_next_won") or 0),
            reserve_met=data.get("reserve_met"),
            buy_now_won=data.get("buy_now_won"),
        )


@dataclass(frozen=True)
class Receipt:
    receipt_id: str
    lot_id: int
    seq: int
    kind: str
    amount_won: int
    price_won: int
    leading: bool
    end_ms: int
    server_ms: int
    retry: bool = False


@dataclass(frozen=True)
class BidOutcome:
    """Result of a bid: a receipt when accepted, else a rejection code."""

    accepted: bool
    code: str
    receipt: Receipt | None
    snapshot: Snapshot | None


@dataclass(frozen=True)
class LotLoad:
    """Input of `AuctionLive.load`: a lot's terms and state, read from PostgreSQL."""

    lot_id: int
    supplier_id: int
    start_price_won: int
    reserve_won: int | None
    buy_now_won: int | None
    start_at: datetime
    end_at: datetime
    hard_cap_at: datetime | None
    soft_close_window_s: int
    extension_s: int
    increments: Iterable[Iterable[int]] = DEFAULT_INCREMENTS
    status: str = "open"
    seq: int = 0
    price_won: int = 0
    leader_id: int | None = None
    leader_max_won: int = 0
    leader_masked: str = ""
    bid_count: int = 0
    current_end_at: datetime | None = None
    bidders: dict[int, int] | None = None
    # "user_id:client_id" -> receipt dict, so retries after a rebuild get their first receipt
    receipts: dict[str, dict[str, Any]] | None = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class AuctionLive:
    def __init__(self, redis: Redis, keys: Keys, *, batcher: ScriptBatcher | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.batcher = batcher or ScriptBatcher(redis)
        self.acks = AckMarks()
        # How long a lot lost by Redis waits before its rebuild (see lots.load_lot);
        # longer than the web processes' ack-mark flush interval.
        self.rebuild_grace_ms = 5_000

    # -- bidding ----------------------------------------------------------------
    async def place_bid(
        self,
        lot_id: int,
        *,
        user_id: int,
        client_id: str,
        amount_won: int,
        bidder_masked: str,
        bidder_supplier_id: int | None = None,
    ) -> BidOutcome:
        """Apply a bid (the bidder's maximum) in one script call.

        Raises redis errors when Redis cannot confirm; callers report "not accepted".
        A retry with the same `client_id` and amount returns the first receipt.
        """
        return await self._bid("bid", lot_id, user_id, client_id, amount_won, bidder_masked, bidder_supplier_id)

    async def buy_now(
        self,
        lot_id: int,
        *,
        user_id: int,
        client_id: str,
        bidder_masked: str,
        bidder_supplier_id: int | None = None,
    ) -> BidOutcome:
        return await self._bid("buy_now", lot_id, user_id, client_id, 0, bidder_masked, bidder_supplier_id)

    async def _bid(
        self, kind: str, lot_id: int, user_id: int, client_id: str, amount_won: int,
        bidder_masked: str, bidder_supplier_id: int | None,
    ) -> BidOutcome:
        keys = self.keys
        reply = await self.batcher.run(
            BID_SCRIPT,
            (
                keys.lot_state(lot_id), keys.lot_bidders(lot_id), keys.lot_receipts(lot_id),
                keys.ledger_stream_for_lot(lot_id), keys.ends_for_lot(lot_id),
            ),
            (kind, user_id, client_id, amount_won, bidder_masked, bidder_supplier_id or 0, keys.events_channel),
        )
        data = orjson.loads(reply)
        snapshot = Snapshot.from_reply(data["snapshot"]) if data.get("snapshot") else None
        if not data["ok"]:
            return BidOutcome(False, data["code"], None, snapshot)
        receipt = Receipt(**data["receipt"])
        self.acks.note(lot_id, receipt.seq)
        return BidOutcome(True, "accepted", receipt, snapshot)

    # -- reading ----------------------------------------------------------------
    async def server_time_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def snapshot(self, lot_id: int) -> Snapshot | None:
        """Read a lot's snapshot; None when the lot is not in Redis."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.lot_state(lot_id))
        pipe.time()
        raw, (seconds, micros) = await pipe.execute()
        if not raw:
            return None
        s = {_text(name): _text(value) for name, value in raw.items()}
        bid_count, price, reserve, buy_now = int(s["bid_count"]), int(s["price"]), int(s["reserve"]), int(s["buy_now"])
        table = validate_increments(
            [tuple(int(x) for x in band.split(":")) for band in s["inc"].split(",")]
        )
        min_next = int(s["start_price"]) if bid_count == 0 else price + increment_for(price, table)
        return Snapshot(
            lot_id=lot_id,
            seq=int(s["seq"]),
            status=s["status"],
            price_won=price,
            bid_count=bid_count,
            leader_id=int(s["leader"]) or None,
            leader_masked=s.get("leader_masked", ""),
            end_ms=int(s["end_ms"]),
            start_ms=int(s["start_ms"]),
            server_ms=int(seconds) * 1000 + int(micros) // 1000,
            min_next_won=min_next,
            reserve_met=None if reserve == 0 else (bid_count > 0 and price >= reserve),
            buy_now_won=buy_now if buy_now and bid_count == 0 and s["status"] == "open" else None,
        )

    async def bidders(self, lot_id: int) -> dict[int, int]:
        raw = await self.redis.hgetall(self.keys.lot_bidders(lot_id))
        return {int(k): int(v) for k, v in raw.items()}

    # -- loading ----------------------------------------------------------------
    async def load(self, lot: LotLoad) -> bool:
        """Put a lot into Redis unless it is already there; True when it was loaded."""
        keys = self.keys
        end_ms = _ms(lot.current_end_at or lot.end_at)
        increments = ",".join(f"{int(a)}:{int(b)}" for a, b in lot.increments)
        fields: dict[str, str | int] = {
            "lot_id": lot.lot_id,
            "supplier_id": lot.supplier_id,
            "start_price": lot.start_price_won,
            "reserve": lot.reserve_won or 0,
            "buy_now": lot.buy_now_won or 0,
            "start_ms": _ms(lot.start_at),
            "end_ms": end_ms,
            "cap_ms": _ms(lot.hard_cap_at) if lot.hard_cap_at else 0,
            "window_ms": lot.soft_close_window_s * 1000,
            "ext_ms": lot.extension_s * 1000,
            "inc": increments,
            "status": lot.status,
            "seq": lot.seq,
            "price": lot.price_won,
            "leader": lot.leader_id or 0,
            "leader_max": lot.leader_max_won,
            "leader_masked": lot.leader_masked,
            "bid_count": lot.bid_count,
        }
        flat: list[str | int] = []
        for name, value in fields.items():
            flat.extend((name, value))
        bidders = {str(user): str(amount) for user, amount in (lot.bidders or {}).items()}
        loaded = await self.batcher.run(
            LOAD_SCRIPT,
            (
                keys.lot_state(lot.lot_id), keys.lot_bidders(lot.lot_id),
                keys.ends_for_lot(lot.lot_id), keys.lot_receipts(lot.lot_id),
            ),
            (
                lot.lot_id, end_ms, lot.status, orjson.dumps(bidders).decode(),
                orjson.dumps({k: orjson.dumps(v).decode() for k, v in (lot.receipts or {}).items()}).decode(),
                *flat,
            ),
        )
        return bool(loaded)

    # -- closing and staff actions ---------------------------------------------
    async def due_lots(self, shard: int, *, limit: int = 100) -> list[int]:
        """Lot ids of one shard whose current end has passed (by Redis time)."""
        now_ms = await self.server_time_ms()
        ids = await self.redis.zrangebyscore(self.keys.ends(shard), 0, now_ms, start=0, num=limit)
        return [int(i) for i in ids]

    async def begin_close(self, lot_id: int) -> dict[str, Any]:
        """Move a due lot to closing (idempotent); returns the script's JSON reply."""
        keys = self.keys
        reply = await self.batcher.run(
            CLOSE_SCRIPT,
            (keys.lot_state(lot_id), keys.ledger_stream_for_lot(lot_id), keys.ends_for_lot(lot_id)),
            (keys.events_channel,),
        )
        return orjson.loads(reply)

    async def admin(
        self, lot_id: int, action: str, argument: str = "", actor_id: int = 0, *, settled_ttl_s: int = 0
    ) -> dict[str, Any]:
        """Run a staff action, a hold or the final settle step; see `lua/admin.lua`."""
        keys = self.keys
        reply = await self.batcher.run(
            ADMIN_SCRIPT,
            (
                keys.lot_state(lot_id), keys.ledger_stream_for_lot(lot_id),
                keys.ends_for_lot(lot_id), keys.lot_bidders(lot_id), keys.lot_receipts(lot_id),
            ),
            (keys.events_channel, action, argument, actor_id, settled_ttl_s),
        )
        return orjson.loads(reply)
