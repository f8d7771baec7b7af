"""Bidding as the web layer calls it: who may bid, input checks, then one script call."""

from __future__ import annotations

import logging
import re

import asyncpg
from redis.exceptions import RedisError

from engine.actors import Actor
from engine.auction.live import AuctionLive, BidOutcome
from engine.auction.lots import load_lot
from engine.auction.rules import InvalidAmount, parse_amount_won
from engine.errors import DomainError

CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")

log = logging.getLogger("jangteo.bids")


def check_client_id(client_id: str) -> str:
    if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise DomainError("invalid_client_id", "client id must be 1 to 64 of A-Z a-z 0-9 _ -")
    return client_id


async def submit_bid(
    db: asyncpg.Pool,
    live: AuctionLive,
    actor: Actor,
    lot_id: int,
    amount: str | int,
    client_id: str,
) -> BidOutcome:
    """Validate a bid request and apply it; rejections by the rules come back as outcomes.

    Raises DomainError for requests that never reach the rules (not allowed to bid,
    malformed amount or client id, unknown lot), and redis errors when Redis cannot
    confirm the bid, which callers must report as "not accepted".
    """
    if not actor.may_bid:
        raise DomainError("not_allowed_to_bid", "this account may not bid")
    try:
        amount_won = parse_amount_won(amount)
    except InvalidAmount as error:
        raise DomainError("invalid_amount", str(error)) from None
    check_client_id(client_id)
    return await _with_lot_loaded(
        db, live, lot_id,
        lambda: live.place_bid(
            lot_id, user_id=actor.user_id, client_id=client_id, amount_won=amount_won,
            bidder_masked=_masked(actor), bidder_supplier_id=actor.supplier_id,
        ),
    )


async def submit_buy_now(
    db: asyncpg.Pool, live: AuctionLive, actor: Actor, lot_id: int, client_id: str
) -> BidOutcome:
    """Buy a lot at its buy-now price (only before its first bid)."""
    if not actor.may_bid:
        raise DomainError("not_allowed_to_bid", "this account may not bid")
    check_client_id(client_id)
    return await _with_lot_loaded(
        db, live, lot_id,
        lambda: live.buy_now(
            lot_id, user_id=actor.user_id, client_id=client_id,
            bidder_masked=_masked(actor), bidder_supplier_id=actor.supplier_id,
        ),
    )


def _masked(actor: Actor) -> str:
    from engine.accounts import mask_name

    return mask_name(actor.display_name)


async def _with_lot_loaded(db, live, lot_id, call) -> BidOutcome:  # type: ignore[no-untyped-def]
    try:
        outcome: BidOutcome = await call()
    except RedisError:
        # Redis may have restarted and lost acknowledged bids: save this process's
        # marks before anyone rebuilds a lot from the ledger.
        await _flush_acks(db, live)
        raise
    if outcome.code != "lot_not_loaded":
        return outcome
    # Redis does not have the lot: it was never loaded or Redis came back empty.
    # Rebuild it from PostgreSQL first; the bid is then judged on the rebuilt state.
    await _flush_acks(db, live)
    if not await load_lot(db, live, lot_id):
        exists = await db.fetchval("SELECT 1 FROM lots WHERE id = $1", lot_id)
        if not exists:
            raise DomainError("lot_not_found", "no such lot", lot_id=lot_id)
    outcome = await call()
    if outcome.code == "lot_not_loaded":
        raise DomainError("lot_not_found", "no such lot", lot_id=lot_id)
    return outcome


async def _flush_acks(db: asyncpg.Pool, live: AuctionLive) -> None:
    try:
        await live.acks.flush(db)
    except (OSError, asyncpg.PostgresError) as error:
        log.error("ack marks not saved error=%s", type(error).__name__)
