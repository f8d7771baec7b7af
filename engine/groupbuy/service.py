"""Pledging as the web layer calls it: who may pledge, input checks, then one script call."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
from redis.exceptions import RedisError

from engine.actors import Actor
from engine.auction.service import check_client_id
from engine.errors import DomainError
from engine.groupbuy.campaigns import load_campaign
from engine.groupbuy.live import CampaignLive, PledgeOutcome
from engine.groupbuy.rules import InvalidUnits, parse_units

log = logging.getLogger("jangteo.pledges")


async def submit_pledge(
    db: asyncpg.Pool,
    live: CampaignLive,
    actor: Actor,
    campaign_id: int,
    units_text: str | int,
    client_id: str,
    *,
    expected_units: int | None = None,
) -> PledgeOutcome:
    """Validate a pledge request (the member's new total; 0 cancels) and apply it.

    Active member, coordinator and supplier accounts may pledge, never staff, and the
    script rejects a supplier's account on its own goods (`own_goods`). Rejections
    by the rules come back as outcomes. Raises DomainError for requests that never
    reach the rules (not allowed to pledge, malformed units or client id, unknown
    campaign). Raises CampaignRebuildPending (code `campaign_rebuilding`) while a
    campaign Redis lost waits out its rebuild grace, and redis errors when Redis
    cannot confirm the pledge. Callers report both as "not accepted", to be sent again.

    `expected_units` makes the pledge a compare-and-set on the member's total: when
    the total is no longer that number, the outcome is `pledge_changed` with the
    current total in `member_units`. The campaign page never sends it.
    """
    if not actor.may_bid:
        raise DomainError("not_allowed_to_pledge", "this account may not pledge")
    try:
        units = parse_units(units_text)
        expected = None if expected_units is None else parse_units(expected_units)
    except InvalidUnits as error:
        raise DomainError("invalid_units", str(error)) from None
    check_client_id(client_id)

    async def call() -> PledgeOutcome:
        return await live.pledge(
            campaign_id, user_id=actor.user_id, client_id=client_id, units=units,
            pledger_supplier_id=actor.supplier_id, expected_units=expected,
        )

    return await _with_campaign_loaded(db, live, campaign_id, call)


async def _with_campaign_loaded(
    db: asyncpg.Pool, live: CampaignLive, campaign_id: int, call: Callable[[], Awaitable[PledgeOutcome]]
) -> PledgeOutcome:
    try:
        outcome = await call()
    except RedisError:
        # Redis may have restarted and lost acknowledged pledges: save this process's
        # marks before anyone rebuilds a campaign from the ledger.
        await _flush_acks(db, live)
        raise
    if outcome.code != "campaign_not_loaded":
        return outcome
    # Redis does not have the campaign: it was never loaded or Redis came back empty.
    # Rebuild it from PostgreSQL first; the pledge is then judged on the rebuilt state.
    # A campaign that was live before raises CampaignRebuildPending until its grace
    # has passed, so this process's marks, saved here, and every other web
    # process's are in PostgreSQL before the rebuild checks them.
    await _flush_acks(db, live)
    if not await load_campaign(db, live, campaign_id):
        exists = await db.fetchval("SELECT 1 FROM campaigns WHERE id = $1", campaign_id)
        if not exists:
            raise DomainError("campaign_not_found", "no such campaign", campaign_id=campaign_id)
    outcome = await call()
    if outcome.code == "campaign_not_loaded":
        raise DomainError("campaign_not_found", "no such campaign", campaign_id=campaign_id)
    return outcome


async def _flush_acks(db: asyncpg.Pool, live: CampaignLive) -> None:
    try:
        await live.acks.flush(db)
    except (OSError, asyncpg.PostgresError) as error:
        log.error("campaign ack marks not saved error=%s", type(error).__name__)
