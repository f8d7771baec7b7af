"""The live state of group-buy campaigns in Redis, changed only through the Lua scripts.

`CampaignLive` is what the web process and the workers call. Every method that
changes a campaign is one script call (`lua/*.lua`, each with `lua/common.lua`
prepended); the reply carries the campaign's snapshot, so callers never read state
separately after writing it. Every change is published on `keys.events_channel` as
JSON with `type: "campaign"`, the event name, the member's `user_id` (for private
notices only; hubs must not forward it to browsers) and the snapshot's fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from engine.auction.acks import AckMarks
from engine.auction.batching import Script, ScriptBatcher
from engine.groupbuy.rules import (
    CampaignState,
    CampaignTerms,
    at_most_price_won,
    next_tier,
    unit_price_for,
)
from engine.keys import Keys

_LUA_DIR = Path(__file__).parent / "lua"
_COMMON = (_LUA_DIR / "common.lua").read_text(encoding="utf-8")


def _script(name: str) -> Script:
    return Script(_COMMON + (_LUA_DIR / name).read_text(encoding="utf-8"))


PLEDGE_SCRIPT = _script("pledge.lua")
LOAD_SCRIPT = _script("load.lua")
CLOSE_SCRIPT = _script("close.lua")
ADMIN_SCRIPT = _script("admin.lua")


@dataclass(frozen=True)
class CampaignSnapshot:
    """What every watcher of a campaign may see; counts in units, prices in won, times in epoch ms."""

    campaign_id: int
    seq: int
    status: str
    committed_units: int
    participants: int
    unit_price_won: int
    next_tier_units: int | None
    next_tier_price_won: int | None
    units_to_next_tier: int | None
    min_total_units: int
    min_buyers: int | None
    units_to_minimum: int
    minimum_met: bool
    stock_cap_units: int
    stock_left: int
    sold_out: bool
    per_member_limit: int
    close_when_sold_out: bool
    deadline_ms: int
    start_ms: int
    server_ms: int
    at_most_price_won: int
    list_price_won: int

    @classmethod
    def from_reply(cls, data: dict[str, Any]) -> "CampaignSnapshot":
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})

    @classmethod
    def compute(cls, terms: CampaignTerms, state: CampaignState, server_ms: int) -> "CampaignSnapshot":
        """Build the snapshot of a campaign from the plain-Python model."""
        committed = state.committed_units
        upcoming = next_tier(terms, committed)
        return cls(
            campaign_id=terms.campaign_id,
            seq=state.seq,
            status=state.status,
            committed_units=committed,
            participants=state.participants,
            unit_price_won=unit_price_for(terms, committed),
            next_tier_units=upcoming[0] if upcoming else None,
            next_tier_price_won=upcoming[1] if upcoming else None,
            units_to_next_tier=upcoming[0] - committed if upcoming else None,
            min_total_units=terms.min_total_units,
            min_buyers=terms.min_buyers,
            units_to_minimum=max(0, terms.min_total_units - committed),
            minimum_met=committed >= terms.min_total_units
            and (terms.min_buyers is None or state.participants >= terms.min_buyers),
            stock_cap_units=terms.stock_cap_units,
            stock_left=max(0, terms.stock_cap_units - committed),
            sold_out=committed >= terms.stock_cap_units,
            per_member_limit=terms.per_member_limit,
            close_when_sold_out=terms.close_when_sold_out,
            deadline_ms=terms.deadline_ms,
            start_ms=terms.start_ms,
            server_ms=server_ms,
            at_most_price_won=at_most_price_won(terms),
            list_price_won=terms.list_price_won,
        )


@dataclass(frozen=True)
class PledgeReceipt:
    """An accepted pledge: `units` is the member's new total, `unit_price_won` the price after it."""

    receipt_id: str
    campaign_id: int
    seq: int
    units: int
    previous_units: int
    delta_units: int
    committed_units: int
    unit_price_won: int
    server_ms: int
    retry: bool = False


@dataclass(frozen=True)
class PledgeOutcome:
    """The answer to a pledge: a receipt when accepted, else a rejection code.

    `units_left` is the stock left (after an accepted pledge, before a rejected
    one); `units_allowed` the largest total the member may pledge and `member_units`
    the member's current total, both given with rejections only.
    """

    accepted: bool
    code: str
    receipt: PledgeReceipt | None
    snapshot: CampaignSnapshot | None
    units_left: int | None
    units_allowed: int | None = None
    member_units: int | None = None


@dataclass(frozen=True)
class CampaignLoad:
    """What `CampaignLive.load` needs to put a campaign into Redis (from PostgreSQL).

    `state.pledges` holds the members' units; `receipts` maps "user_id:client_id" to
    the receipt dict, so retries after a rebuild get their first answer.
    """

    terms: CampaignTerms
    state: CampaignState
    receipts: dict[str, dict[str, Any]] | None = None


class CampaignLive:
    def __init__(self, redis: Redis, keys: Keys, batcher: ScriptBatcher | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.batcher = batcher or ScriptBatcher(redis)
        self.acks = AckMarks(table="campaign_ack_marks", id_column="campaign_id")
        # How long a campaign lost by Redis waits before its rebuild (see
        # campaigns.load_campaign); longer than the web processes' ack-mark flush interval.
        self.rebuild_grace_ms = 5_000

    # -- pledging ---------------------------------------------------------------
    async def pledge(
        self,
        campaign_id: int,
        *,
        user_id: int,
        client_id: str,
        units: int | str,
        pledger_supplier_id: int | None = None,
        expected_units: int | None = None,
    ) -> PledgeOutcome:
        """Set the member's total to `units` (0 cancels) in one script call.

        Raises redis errors when Redis cannot confirm; callers report "not accepted".
        A retry with the same `client_id` and total returns the first receipt, and
        under concurrency the script's atomicity keeps the total within the cap.
        With `expected_units`, the pledge is applied only while the member's total is
        still that number, else rejected with `pledge_changed` and the current total
        in `member_units`.
        """
        keys = self.keys
        reply = await self.batcher.run(
            PLEDGE_SCRIPT,
            (
                keys.campaign_state(campaign_id), keys.campaign_pledges(campaign_id),
                keys.campaign_receipts(campaign_id), keys.campaign_ledger_stream_for(campaign_id),
                keys.campaign_deadlines_for(campaign_id),
            ),
            (
                user_id, client_id, str(units), pledger_supplier_id or 0, keys.events_channel,
                "" if expected_units is None else str(expected_units),
            ),
        )
        data = orjson.loads(reply)
        snapshot = CampaignSnapshot.from_reply(data["snapshot"]) if data.get("snapshot") else None
        if not data["ok"]:
            return PledgeOutcome(
                False, data["code"], None, snapshot, data.get("units_left"),
                data.get("units_allowed"), data.get("units"),
            )
        receipt = PledgeReceipt(**data["receipt"])
        self.acks.note(campaign_id, receipt.seq)
        left = snapshot.stock_left if snapshot else None
        return PledgeOutcome(True, "accepted", receipt, snapshot, left)

    # -- reading ----------------------------------------------------------------
    async def server_time_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def snapshot(self, campaign_id: int) -> CampaignSnapshot | None:
        """Read a campaign's snapshot; None when the campaign is not in Redis."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.campaign_state(campaign_id))
        pipe.time()
        raw, (seconds, micros) = await pipe.execute()
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        terms, state = _terms_and_state(fields)
        return CampaignSnapshot.compute(terms, state, int(seconds) * 1000 + int(micros) // 1000)

    async def snapshots(self, campaign_ids: list[int]) -> dict[int, CampaignSnapshot]:
        """Read the snapshots of several campaigns in one round trip. Campaigns not in Redis are left out."""
        pipe = self.redis.pipeline(transaction=False)
        for campaign_id in campaign_ids:
            pipe.hgetall(self.keys.campaign_state(campaign_id))
        pipe.time()
        *raws, (seconds, micros) = await pipe.execute()
        server_ms = int(seconds) * 1000 + int(micros) // 1000
        found: dict[int, CampaignSnapshot] = {}
        for campaign_id, raw in zip(campaign_ids, raws):
            if raw:
                terms, state = _terms_and_state({_text(k): _text(v) for k, v in raw.items()})
                found[campaign_id] = CampaignSnapshot.compute(terms, state, server_ms)
        return found

    async def pledges(self, campaign_id: int) -> dict[int, int]:
        """Return every member's committed units (members with units > 0)."""
        raw = await self.redis.hgetall(self.keys.campaign_pledges(campaign_id))
        return {int(k): int(v) for k, v in raw.items()}

    # -- loading ----------------------------------------------------------------
    async def load(self, campaign: CampaignLoad) -> bool:
        """Put a campaign into Redis unless it is already there; True when it was loaded."""
        keys = self.keys
        terms, state = campaign.terms, campaign.state
        fields: dict[str, str | int] = {
            "campaign_id": terms.campaign_id,
            "supplier_id": terms.supplier_id,
            "list_price": terms.list_price_won,
            "tiers": ",".join(f"{int(units)}:{int(price)}" for units, price in terms.tiers),
            "min_total": terms.min_total_units,
            "min_buyers": terms.min_buyers or 0,
            "cap": terms.stock_cap_units,
            "limit": terms.per_member_limit,
            "start_ms": terms.start_ms,
            "deadline_ms": terms.deadline_ms,
            "sold_out_close": int(terms.close_when_sold_out),
            "status": state.status,
            "seq": state.seq,
            "committed": sum(state.pledges.values()),
            "participants": sum(1 for units in state.pledges.values() if units > 0),
        }
        flat: list[str | int] = []
        for name, value in fields.items():
            flat.extend((name, value))
        pledges = {str(user): str(units) for user, units in state.pledges.items() if units > 0}
        receipts = {k: orjson.dumps(v).decode() for k, v in (campaign.receipts or {}).items()}
        cid = terms.campaign_id
        loaded = await self.batcher.run(
            LOAD_SCRIPT,
            (
                keys.campaign_state(cid), keys.campaign_pledges(cid),
                keys.campaign_receipts(cid), keys.campaign_deadlines_for(cid),
            ),
            (orjson.dumps(pledges).decode(), orjson.dumps(receipts).decode(), *flat),
        )
        return bool(loaded)

    # -- closing and staff actions ---------------------------------------------
    async def due_campaigns(self, shard: int, *, limit: int = 100) -> list[int]:
        """Campaign ids of one shard that are due to close, by Redis time.

        Due: the deadline has passed, or the campaign sold out with "close when sold
        out" on. `begin_close` checks again, so a stale entry is harmless.
        """
        now_ms = await self.server_time_ms()
        ids = await self.redis.zrangebyscore(self.keys.campaign_deadlines(shard), 0, now_ms, start=0, num=limit)
        return [int(i) for i in ids]

    async def begin_close(self, campaign_id: int) -> dict[str, Any]:
        """Move a due campaign to closing (idempotent) and return the script's JSON reply.

        On success the reply holds `state` (the hash, with `seq` the final sequence
        number), `pledges` ({user_id: units} as strings) and `snapshot`; otherwise `code`
        is `campaign_not_loaded`, `not_due` or `not_open` (with `status`). For a campaign
        staff cancelled it returns `not_open` with `seq`, the seq of its cancel event,
        and the campaign stays due until `admin(..., "settle", ...)`.
        """
        keys = self.keys
        reply = await self.batcher.run(
            CLOSE_SCRIPT,
            (
                keys.campaign_state(campaign_id), keys.campaign_pledges(campaign_id),
                keys.campaign_ledger_stream_for(campaign_id), keys.campaign_deadlines_for(campaign_id),
            ),
            (keys.events_channel,),
        )
        data: dict[str, Any] = orjson.loads(reply)
        if isinstance(data.get("pledges"), list):  # Redis's cjson encodes an empty table as []
            data["pledges"] = {}
        return data

    async def admin(self, campaign_id: int, action: str, argument: str = "", actor_id: int = 0) -> dict[str, Any]:
        """Run `settle` (final status after PostgreSQL committed), `cancel` or `release`; see `lua/admin.lua`."""
        keys = self.keys
        reply = await self.batcher.run(
            ADMIN_SCRIPT,
            (
                keys.campaign_state(campaign_id), keys.campaign_pledges(campaign_id),
                keys.campaign_ledger_stream_for(campaign_id), keys.campaign_deadlines_for(campaign_id),
                keys.campaign_receipts(campaign_id),
            ),
            (keys.events_channel, action, argument, actor_id),
        )
        return orjson.loads(reply)

    async def release(self, campaign_id: int, user_id: int, units: int, release_key: str = "") -> dict[str, Any]:
        """Release up to `units` of a member's pledge whose up-front payment hold expired.

        One `hold_expired` event with the next sequence number. Rejected with
        `campaign_closed` at or after the deadline, so the total at the deadline stays
        final; the closer then deals with unpaid holds. A `release_key` (letters,
        digits, `:_-`, at most 64) makes a repeated call a no-op that returns
        `retry: true`, and becomes the event's `client_id` in `pledge_events`.
        """
        argument = f"{int(user_id)}:{int(units)}"
        if release_key:
            argument += f":{release_key}"
        return await self.admin(campaign_id, "release", argument)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _terms_and_state(fields: dict[str, str]) -> tuple[CampaignTerms, CampaignState]:
    tiers = tuple(
        (int(units), int(price))
        for units, price in (band.split(":") for band in fields["tiers"].split(",") if band)
    )
    terms = CampaignTerms(
        campaign_id=int(fields["campaign_id"]),
        supplier_id=int(fields["supplier_id"]),
        list_price_won=int(fields["list_price"]),
        tiers=tiers,
        min_total_units=int(fields["min_total"]),
        min_buyers=int(fields["min_buyers"]) or None,
        stock_cap_units=int(fields["cap"]),
        per_member_limit=int(fields["limit"]),
        start_ms=int(fields["start_ms"]),
        deadline_ms=int(fields["deadline_ms"]),
        close_when_sold_out=fields["sold_out_close"] == "1",
    )
    state = CampaignState(
        status=fields["status"],
        seq=int(fields["seq"]),
        committed_units=int(fields["committed"]),
        participants=int(fields["participants"]),
    )
    return terms, state
