"""Campaign items of complex orders: a neighbour's line on one is a pledge in that campaign.

A complex order may offer the product of a running group-buy campaign. The
neighbour's line on it changes that neighbour's pledge through
`engine.groupbuy.service.submit_pledge` (the same Lua script, cap, member limit,
deadline, ledger and receipts as a pledge from the campaign page), so the units
count toward the campaign's tiers. The household limit is still checked on the
complex side first. The campaign's own close makes the order for these units, so
the complex order's close leaves them out and only lists them on the pick list and
the delivery sheet.

A line moves the member's pledge by its change (current pledge - old line + new
line), so units the member pledged on the campaign page directly are kept. The
pledge is a compare-and-set on the total it was computed from: when the member's
pledge changed after it was read (a pledge from the campaign page, or another
line), the script rejects it with `pledge_changed` and the current total, and the
new total is computed again from that, at most `MAX_PLEDGE_ATTEMPTS` times.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import asyncpg
from redis.exceptions import RedisError

from engine.actors import Actor
from engine.errors import DomainError
from engine.groupbuy.campaigns import load_campaign, terms_from_row
from engine.groupbuy.live import CampaignLive, PledgeOutcome
from engine.groupbuy.rules import at_most_price_won
from engine.groupbuy.service import submit_pledge

log = logging.getLogger("jangteo.complexorders")

# Each attempt after the first follows a change to the member's pledge that landed
# between the read and the pledge, so more than a few means the pledge keeps changing.
MAX_PLEDGE_ATTEMPTS = 5
# Sends of one attempt when the Redis call fails. The pledge may have been applied
# without its reply arriving, so the same pledge (same client id) is sent again. The
# script then returns the first receipt instead of applying it a second time.
MAX_SENDS_PER_ATTEMPT = 3


@dataclass(frozen=True)
class CampaignItem:
    """The product, supplier, name, unit and "at most" price an item copies from a running campaign."""

    campaign_id: int
    product_id: int
    supplier_id: int
    name: str
    unit: str
    at_most_price_won: int


async def running_campaign(connection: asyncpg.Connection, campaign_id: int) -> CampaignItem:
    """Read a campaign that is open and before its deadline (PostgreSQL's clock); raise `campaign_not_running`."""
    row = await connection.fetchrow(
        """SELECT c.*, p.name AS product_name, p.unit AS product_unit FROM campaigns c
           JOIN products p ON p.id = c.product_id
           WHERE c.id = $1 AND c.status = 'open' AND c.deadline_at > now()""",
        campaign_id,
    )
    if row is None:
        raise DomainError("campaign_not_running", f"campaign {campaign_id} is not open for pledges",
                          campaign_id=campaign_id)
    return CampaignItem(
        campaign_id=campaign_id,
        product_id=row["product_id"],
        supplier_id=row["supplier_id"],
        name=row["product_name"],
        unit=row["unit_label"] or row["product_unit"],
        at_most_price_won=at_most_price_won(terms_from_row(row)),
    )


@dataclass(frozen=True)
class PledgeChange:
    """A pledge this module changed: the member's total just before and just after the change."""

    campaign_id: int
    item_id: int
    previous_total: int
    new_total: int


async def member_pledge(db: asyncpg.Pool, live: CampaignLive, campaign_id: int, user_id: int) -> int:
    """Return the member's pledged units in Redis, loading the campaign from PostgreSQL if Redis lacks it."""
    if await live.snapshot(campaign_id) is None:
        await load_campaign(db, live, campaign_id)
    raw = await live.redis.hget(live.keys.campaign_pledges(campaign_id), str(user_id))
    return int(raw) if raw is not None else 0


async def change_pledge(
    db: asyncpg.Pool, live: CampaignLive, actor: Actor, *, campaign_id: int, item_id: int, delta_units: int
) -> PledgeChange | None:
    """Move the member's pledge by `delta_units` (not below 0) and return the change, or None when nothing changed.

    Raises `campaign_pledge_rejected` (with the script's `reason`, `units_left` and
    `units_allowed`) when the campaign rejects the new total,
    `campaign_pledge_conflict` when the member's pledge changed before each of
    `MAX_PLEDGE_ATTEMPTS` attempts, and `campaign_unavailable` when Redis cannot
    confirm it, so the line is not saved.
    """
    if delta_units == 0:
        return None
    previous, new_total, outcome = await _move_pledge(db, live, actor, campaign_id, delta_units)
    if not outcome.accepted:
        raise DomainError(
            "campaign_pledge_rejected",
            f"campaign {campaign_id} rejected {new_total} units ({outcome.code}); {outcome.units_left} units left",
            campaign_id=campaign_id, item_id=item_id, reason=outcome.code,
            units_left=outcome.units_left if outcome.units_left is not None else 0,
        )
    return PledgeChange(campaign_id, item_id, previous, new_total)


async def revert_pledges(db: asyncpg.Pool, live: CampaignLive, actor: Actor, changes: list[PledgeChange]) -> None:
    """Take each change back out of the member's pledge, after the complex side failed to save.

    Each pledge moves by the opposite of its change, so a pledge the member sent
    from the campaign page meanwhile is kept. Best effort: a revert that fails is
    logged with its ids, and the campaign keeps the units that the member's complex
    line no longer shows.
    """
    for change in reversed(changes):
        try:
            _, _, outcome = await _move_pledge(db, live, actor, change.campaign_id,
                                               change.previous_total - change.new_total)
            # `no_pledge`: the member cancelled on the campaign page, so nothing is left to take out.
            reverted = outcome.accepted or outcome.code == "no_pledge"
            reason = outcome.code
        except DomainError as error:
            reverted, reason = False, error.code
        if not reverted:
            log.error("complex campaign pledge not reverted campaign_id=%s user_id=%s delta_units=%s reason=%s",
                      change.campaign_id, actor.user_id, change.new_total - change.previous_total, reason)


async def _move_pledge(
    db: asyncpg.Pool, live: CampaignLive, actor: Actor, campaign_id: int, delta_units: int
) -> tuple[int, int, PledgeOutcome]:
    """Pledge (current total + `delta_units`, at least 0) as a compare-and-set on the current total.

    Returns the total the pledge was computed from, the new total and the outcome
    of the last attempt, which is never `pledge_changed`. Raises
    `campaign_pledge_conflict` after `MAX_PLEDGE_ATTEMPTS` conflicts and
    `campaign_unavailable` when Redis cannot confirm the pledge.
    """
    # One client id serves every attempt: only an accepted attempt stores a receipt, and it ends the loop.
    client_id = _client_id()
    try:
        current = await member_pledge(db, live, campaign_id, actor.user_id)
        for attempt in range(1, MAX_PLEDGE_ATTEMPTS + 1):
            new_total = max(0, current + delta_units)
            outcome = await _send_pledge(db, live, actor, campaign_id, new_total, client_id, expected_units=current)
            if outcome.code != "pledge_changed":
                return current, new_total, outcome
            log.info("complex campaign pledge changed meanwhile campaign_id=%s user_id=%s expected=%s "
                     "current=%s attempt=%s", campaign_id, actor.user_id, current, outcome.member_units, attempt)
            # Every rejection carries the member's total; read it if this one did not.
            if outcome.member_units is not None:
                current = outcome.member_units
            else:
                current = await member_pledge(db, live, campaign_id, actor.user_id)
    except (RedisError, OSError) as error:
        log.warning("complex campaign pledge not confirmed campaign_id=%s user_id=%s error=%s",
                    campaign_id, actor.user_id, type(error).__name__)
        raise DomainError("campaign_unavailable", "the group buy could not confirm the pledge; try again",
                          campaign_id=campaign_id) from None
    log.warning("complex campaign pledge gave up campaign_id=%s user_id=%s attempts=%s",
                campaign_id, actor.user_id, MAX_PLEDGE_ATTEMPTS)
    raise DomainError(
        "campaign_pledge_conflict",
        f"the pledge in campaign {campaign_id} changed during each of {MAX_PLEDGE_ATTEMPTS} attempts; try again",
        campaign_id=campaign_id,
    )


async def _send_pledge(
    db: asyncpg.Pool, live: CampaignLive, actor: Actor, campaign_id: int, units: int, client_id: str,
    *, expected_units: int,
) -> PledgeOutcome:
    """Submit one pledge, sending it again with the same client id when the Redis call fails.

    Raises the last RedisError or OSError after `MAX_SENDS_PER_ATTEMPT` sends; the
    pledge may or may not have been applied then.
    """
    for send in range(1, MAX_SENDS_PER_ATTEMPT):
        try:
            return await submit_pledge(db, live, actor, campaign_id, units, client_id, expected_units=expected_units)
        except (RedisError, OSError) as error:
            log.warning("complex campaign pledge sent again campaign_id=%s user_id=%s send=%s error=%s",
                        campaign_id, actor.user_id, send, type(error).__name__)
    return await submit_pledge(db, live, actor, campaign_id, units, client_id, expected_units=expected_units)


def _client_id() -> str:
    return f"complex-{secrets.token_hex(12)}"
