"""Opening complex orders and joining them: the coordinator role, drafts and household limits.

A household's limit is shared by every account that gives the same building and
unit. `submit_participation` locks the household row (`SELECT ... FOR UPDATE`)
before it sums what the household's other accounts ordered, so concurrent joins
from one household are serialized and never pass the limit together. It also
holds a share lock on the complex order row, so a close (which takes the row
`FOR UPDATE`) waits for joins in flight and no join lands after a close.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.actors import COORDINATOR, MEMBER, Actor
from engine.complexorders import campaign_lines, rules
from engine.complexorders.model import ComplexOrder, fetch_complex
from engine.errors import DomainError
from engine.groupbuy.live import CampaignLive
from engine.keys import Keys
from engine.orders import audit, require_staff

log = logging.getLogger("jangteo.complexorders")

KST = ZoneInfo("Asia/Seoul")
MAX_ITEMS = 30
MAX_OPEN_DAYS = 60
GRANTABLE_ROLES = (MEMBER, COORDINATOR)


# -- the coordinator role -------------------------------------------------------------


async def set_role(db: asyncpg.Pool, actor: Actor, user_id: int, role: str) -> None:
    """Grant or withdraw the coordinator role (staff only, audited).

    Only members and coordinators change here; staff and supplier accounts keep their
    role (`role_not_changeable`). Raises `user_not_found` for an unknown id.
    """
    require_staff(actor)
    if role not in GRANTABLE_ROLES:
        raise DomainError("invalid_field", f"role must be one of {GRANTABLE_ROLES}", field="role")
    async with db.acquire() as connection:
        async with connection.transaction():
            current = await connection.fetchval("SELECT role FROM users WHERE id = $1 FOR UPDATE", user_id)
            if current is None:
                raise DomainError("user_not_found", f"user {user_id} does not exist", user_id=user_id)
            if current not in GRANTABLE_ROLES:
                raise DomainError("role_not_changeable", f"user {user_id} is {current}", user_id=user_id)
            await connection.execute("UPDATE users SET role = $2 WHERE id = $1", user_id, role)
            await audit(connection, actor, "user.set_role", "user", user_id, {"from": current, "to": role})
    log.info("role changed user_id=%s role=%s actor_id=%s", user_id, role, actor.user_id)


# -- drafts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemDraft:
    """A catalogue product (`product_id`) or a running campaign's product (`campaign_id`)."""

    product_id: int | None
    per_household_limit: int
    campaign_id: int | None = None


@dataclass(frozen=True)
class ComplexDraft:
    kind: str
    complex_name: str
    road_address: str
    pickup_point: str
    delivery_date: date
    delivery_slot: str
    closes_at: datetime
    items: tuple[ItemDraft, ...]
    min_total_won: int | None = None
    free_shipping_from_won: int = rules.DEFAULT_FREE_SHIPPING_FROM_WON
    shipping_fee_won: int = rules.DEFAULT_SHIPPING_FEE_WON
    reward_bp: int = 0


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_moment(value: object, field: str) -> datetime:
    """Parse ISO 8601 text into an aware datetime; text without an offset is Korea time."""
    try:
        if not isinstance(value, str):
            raise ValueError("not text")
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise DomainError("invalid_datetime", f"{field} must be ISO 8601", field=field) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=KST)


def parse_draft(data: Mapping[str, object]) -> ComplexDraft:
    """Read a complex order's settings from a JSON object or a form; raise DomainError on the first bad field.

    `items` is a list of {"product_id" or "campaign_id", "per_household_limit"}.
    """
    kind = data.get("kind")
    if kind not in rules.KINDS:
        raise DomainError("invalid_field", "kind must be apartment or institution", field="kind")
    try:
        delivery_date = date.fromisoformat(str(data.get("delivery_date", "")).strip())
    except ValueError:
        raise DomainError("invalid_field", "delivery_date must be YYYY-MM-DD", field="delivery_date") from None
    raw_items = data.get("items")
    if not isinstance(raw_items, list) or not raw_items or len(raw_items) > MAX_ITEMS:
        raise DomainError("invalid_field", f"items must list 1 to {MAX_ITEMS} products", field="items")
    items: list[ItemDraft] = []
    for raw in raw_items:
        if not isinstance(raw, Mapping):
            raise DomainError("invalid_field", "each item is an object", field="items")
        limit = rules.parse_count(raw.get("per_household_limit"), "per_household_limit", minimum=1)
        if _blank(raw.get("campaign_id")):
            product_id = rules.parse_count(raw.get("product_id"), "product_id", minimum=1, maximum=2**62)
            items.append(ItemDraft(product_id=product_id, per_household_limit=limit))
        elif _blank(raw.get("product_id")):
            campaign_id = rules.parse_count(raw.get("campaign_id"), "campaign_id", minimum=1, maximum=2**62)
            items.append(ItemDraft(product_id=None, per_household_limit=limit, campaign_id=campaign_id))
        else:
            raise DomainError("invalid_field", "an item names a product_id or a campaign_id, not both", field="items")
    keys = [(item.product_id, item.campaign_id) for item in items]
    if len(set(keys)) != len(keys):
        raise DomainError("invalid_field", "a product is offered at most once", field="items")
    min_total = data.get("min_total_won")
    return ComplexDraft(
        kind=str(kind),
        complex_name=rules.clean_text(data.get("complex_name"), "complex_name"),
        road_address=rules.clean_text(data.get("road_address"), "road_address", max_chars=200),
        pickup_point=rules.clean_text(data.get("pickup_point"), "pickup_point"),
        delivery_date=delivery_date,
        delivery_slot=rules.clean_text(data.get("delivery_slot"), "delivery_slot", max_chars=40),
        closes_at=parse_moment(data.get("closes_at"), "closes_at"),
        items=tuple(items),
        min_total_won=None if _blank(min_total) else rules.parse_won(min_total, "min_total_won", minimum=1),
        free_shipping_from_won=(
            rules.DEFAULT_FREE_SHIPPING_FROM_WON if _blank(data.get("free_shipping_from_won"))
            else rules.parse_won(data.get("free_shipping_from_won"), "free_shipping_from_won")
        ),
        shipping_fee_won=(
            rules.DEFAULT_SHIPPING_FEE_WON if _blank(data.get("shipping_fee_won"))
            else rules.parse_won(data.get("shipping_fee_won"), "shipping_fee_won")
        ),
        reward_bp=0 if _blank(data.get("reward_bp")) else rules.parse_count(
            data.get("reward_bp"), "reward_bp", maximum=rules.BP_PER_UNIT
        ),
    )


async def create_complex_order(db: asyncpg.Pool, actor: Actor, draft: ComplexDraft) -> ComplexOrder:
    """Open a complex order for a coordinator; each item is an approved product at its price.

    The role is read from PostgreSQL, not from the session, so a role granted or
    withdrawn a moment ago counts. Raises `forbidden`, `invalid_datetime`,
    `product_not_available`.
    """
    async with db.acquire() as connection:
        async with connection.transaction():
            role, status = await _role_of(connection, actor.user_id)
            if role != COORDINATOR or status != "active":
                raise DomainError("forbidden", "only active coordinators open complex orders")
            now = await connection.fetchval("SELECT now()")
            if draft.closes_at <= now:
                raise DomainError("invalid_datetime", "closes_at must be in the future", field="closes_at")
            if draft.closes_at > now + timedelta(days=MAX_OPEN_DAYS):
                raise DomainError("invalid_datetime", f"a complex order is open at most {MAX_OPEN_DAYS} days",
                                  field="closes_at")
            if draft.delivery_date < draft.closes_at.astimezone(KST).date():
                raise DomainError("invalid_datetime", "delivery must be on or after the closing day",
                                  field="delivery_date")
            complex_order_id = await _insert_with_code(connection, actor, draft)
            for position, item in enumerate(draft.items):
                await _insert_item(connection, complex_order_id, item, position)
            created = await fetch_complex(connection, complex_order_id)
    assert created is not None
    log.info("complex order opened complex_order_id=%s coordinator_id=%s items=%s",
             created.id, actor.user_id, len(created.items))
    return created


async def _insert_item(connection: asyncpg.Connection, complex_order_id: int, item: ItemDraft, position: int) -> None:
    """Copy an approved product at its price, or a running campaign's product at its "at most" price."""
    if item.campaign_id is not None:
        campaign = await campaign_lines.running_campaign(connection, item.campaign_id)
        values = (campaign.product_id, campaign.supplier_id, campaign.name, campaign.unit,
                  campaign.at_most_price_won)
    else:
        product = await connection.fetchrow(
            """SELECT p.id, p.supplier_id, p.name, p.unit, p.price_won
               FROM products p JOIN suppliers s ON s.id = p.supplier_id
               WHERE p.id = $1 AND p.status = 'approved' AND s.status = 'approved'""",
            item.product_id,
        )
        if product is None:
            raise DomainError("product_not_available", f"product {item.product_id} is not approved",
                              product_id=item.product_id)
        values = (product["id"], product["supplier_id"], product["name"], product["unit"], product["price_won"])
    try:
        await connection.execute(
            """INSERT INTO complex_items (complex_order_id, product_id, supplier_id, name, unit,
                                          unit_price_won, per_household_limit, position, campaign_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            complex_order_id, *values, item.per_household_limit, position, item.campaign_id,
        )
    except asyncpg.UniqueViolationError:
        raise DomainError("invalid_field", f"product {values[0]} is offered at most once", field="items") from None


async def _role_of(connection: asyncpg.Connection, user_id: int) -> tuple[str, str]:
    row = await connection.fetchrow("SELECT role, status FROM users WHERE id = $1", user_id)
    if row is None:
        raise DomainError("forbidden", "unknown account")
    return row["role"], row["status"]


async def _insert_with_code(connection: asyncpg.Connection, actor: Actor, draft: ComplexDraft) -> int:
    """Insert the complex order under a fresh unique code (a savepoint retries a collision)."""
    for attempt in range(20):
        length = rules.CODE_LENGTH + (1 if attempt >= 10 else 0)
        try:
            async with connection.transaction():
                return await connection.fetchval(
                    """INSERT INTO complex_orders (code, kind, coordinator_id, complex_name, road_address,
                           pickup_point, delivery_date, delivery_slot, closes_at, min_total_won,
                           free_shipping_from_won, shipping_fee_won, reward_bp)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id""",
                    rules.new_code(length), draft.kind, actor.user_id, draft.complex_name, draft.road_address,
                    draft.pickup_point, draft.delivery_date, draft.delivery_slot, draft.closes_at,
                    draft.min_total_won, draft.free_shipping_from_won, draft.shipping_fee_won, draft.reward_bp,
                )
        except asyncpg.UniqueViolationError:
            continue
    raise RuntimeError("no free complex order code after 20 attempts")


# -- joining and ordering --------------------------------------------------------------


@dataclass(frozen=True)
class Participation:
    participant_id: int
    household_id: int
    created: bool


async def submit_participation(
    db: asyncpg.Pool,
    actor: Actor,
    complex_order_id: int,
    *,
    quantities: Mapping[int, int],
    building: object = None,
    unit: object = None,
    phone: object = None,
    redis: Redis | None = None,
    keys: Keys | None = None,
    campaigns: CampaignLive | None = None,
) -> Participation:
    """Join a complex order or change one's quantities, within each item's household limit.

    A first call needs building, unit and phone; later calls may leave them out,
    and must name the same household when they give one. Items left out of
    `quantities` keep their quantity and a quantity of 0 removes the line. Raises
    `complex_not_found`, `complex_not_open`, `item_not_found`, `invalid_household`,
    `invalid_phone`, `household_changed`, `empty_order`, and
    `household_limit_exceeded` with the units the household may still add.

    A line on a campaign item changes the member's pledge in that campaign
    (`campaign_lines`) while the household row is locked, and the pledge is set
    back when the complex side then fails to save. Such lines also raise
    `campaign_pledge_rejected`, `campaign_pledge_conflict` and `campaign_unavailable`.
    `campaigns` defaults to a `CampaignLive` on `redis` and `keys`.
    """
    if not actor.status == "active" or actor.role not in (MEMBER, COORDINATOR):
        raise DomainError("forbidden", "only active member accounts join complex orders")
    own_live = campaigns is None and redis is not None and keys is not None
    live = CampaignLive(redis, keys) if own_live else campaigns  # type: ignore[arg-type]
    try:
        for attempt in range(3):
            changes: list[campaign_lines.PledgeChange] = []
            try:
                return await _submit_once(db, actor, complex_order_id, quantities, building, unit, phone,
                                          redis, keys, live, changes)
            except asyncpg.UniqueViolationError:
                await _revert(db, live, actor, changes)
                # Two first joins of one account raced; the loser retries as a change.
                if attempt == 2:
                    raise
            except BaseException:
                await _revert(db, live, actor, changes)
                raise
    finally:
        if own_live and live is not None:
            # This process's own CampaignLive: save its acknowledged sequence numbers now.
            await live.acks.flush(db)
    raise AssertionError("unreachable")


async def _revert(db: asyncpg.Pool, live: CampaignLive | None, actor: Actor,
                  changes: list[campaign_lines.PledgeChange]) -> None:
    if changes and live is not None:
        await campaign_lines.revert_pledges(db, live, actor, changes)


async def _submit_once(
    db: asyncpg.Pool, actor: Actor, complex_order_id: int, quantities: Mapping[int, int],
    building: object, unit: object, phone: object, redis: Redis | None, keys: Keys | None,
    live: CampaignLive | None, changes: list[campaign_lines.PledgeChange],
) -> Participation:
    async with db.acquire() as connection:
        async with connection.transaction():
            complex_order = await fetch_complex(connection, complex_order_id, lock="FOR SHARE")
            if complex_order is None:
                raise DomainError("complex_not_found", f"complex order {complex_order_id} does not exist",
                                  complex_order_id=complex_order_id)
            is_open = await connection.fetchval("SELECT now() < $1", complex_order.closes_at)
            if complex_order.status != "open" or not is_open:
                raise DomainError("complex_not_open", f"complex order {complex_order_id} is closed",
                                  complex_order_id=complex_order_id)
            for item_id in quantities:
                if complex_order.item(item_id) is None:
                    raise DomainError("item_not_found", f"item {item_id} is not offered here", item_id=item_id)

            existing = await connection.fetchrow(
                """SELECT p.id, p.household_id, p.phone, h.building, h.unit
                   FROM complex_participants p JOIN complex_households h ON h.id = p.household_id
                   WHERE p.complex_order_id = $1 AND p.user_id = $2""",
                complex_order_id, actor.user_id,
            )
            household = _household_of(complex_order, existing, building, unit)
            contact = rules.parse_phone(phone) if phone is not None or existing is None else existing["phone"]

            await connection.execute(
                """INSERT INTO complex_households (complex_order_id, building, unit) VALUES ($1, $2, $3)
                   ON CONFLICT (complex_order_id, building, unit) DO NOTHING""",
                complex_order_id, *household,
            )
            # Every account of this household queues here, so the sums below are stable.
            household_id = await connection.fetchval(
                """SELECT id FROM complex_households
                   WHERE complex_order_id = $1 AND building = $2 AND unit = $3 FOR UPDATE""",
                complex_order_id, *household,
            )
            if existing is None and not any(quantities.values()):
                raise DomainError("empty_order", "order at least one unit to join")
            if existing is None:
                participant_id = await connection.fetchval(
                    """INSERT INTO complex_participants (complex_order_id, household_id, user_id, phone)
                       VALUES ($1, $2, $3, $4) RETURNING id""",
                    complex_order_id, household_id, actor.user_id, contact,
                )
            else:
                participant_id = existing["id"]
                await connection.execute(
                    "UPDATE complex_participants SET phone = $2, updated_at = now() WHERE id = $1",
                    participant_id, contact,
                )
            previous = dict(await connection.fetch(
                "SELECT item_id, quantity FROM complex_lines WHERE participant_id = $1", participant_id
            ))
            await _write_lines(connection, complex_order, household_id, participant_id, quantities)
            await _pledge_campaign_lines(db, live, actor, complex_order, previous, quantities, changes)

    await publish(redis, keys, complex_order_id, "join" if existing is None else "change", participant_id)
    log.info("complex participation complex_order_id=%s participant_id=%s household_id=%s created=%s",
             complex_order_id, participant_id, household_id, existing is None)
    return Participation(participant_id, household_id, existing is None)


def _household_of(
    complex_order: ComplexOrder, existing: asyncpg.Record | None, building: object, unit: object
) -> tuple[str, str]:
    if building is None and unit is None:
        if existing is None:
            raise DomainError("invalid_household", "give the building and unit to join", field="building")
        return existing["building"], existing["unit"]
    household = rules.parse_household(complex_order.kind, building, unit)
    if existing is not None and household != (existing["building"], existing["unit"]):
        raise DomainError("household_changed", "an account belongs to one household per complex order")
    return household


async def _pledge_campaign_lines(
    db: asyncpg.Pool,
    live: CampaignLive | None,
    actor: Actor,
    complex_order: ComplexOrder,
    previous: Mapping[int, int],
    quantities: Mapping[int, int],
    changes: list[campaign_lines.PledgeChange],
) -> None:
    """Move the member's campaign pledges by the change of each campaign line, appending to `changes`.

    Runs inside the join's transaction after `_write_lines` checked the household
    limit, so a rejected pledge rolls the lines back and the caller reverts the
    pledges already in `changes`.
    """
    for item_id, quantity in quantities.items():
        item = complex_order.item(item_id)
        assert item is not None
        delta = quantity - previous.get(item_id, 0)
        if item.campaign_id is None or delta == 0:
            continue
        if live is None:
            raise DomainError("campaign_unavailable", "the group buy could not confirm the pledge; try again",
                              campaign_id=item.campaign_id)
        # NOTE: a campaign missing from Redis is loaded on a second pool connection while
        # this transaction holds one, so a pool exhausted by such joins would wait.
        change = await campaign_lines.change_pledge(db, live, actor, campaign_id=item.campaign_id,
                                                    item_id=item_id, delta_units=delta)
        if change is not None:
            changes.append(change)


async def _write_lines(
    connection: asyncpg.Connection,
    complex_order: ComplexOrder,
    household_id: int,
    participant_id: int,
    quantities: Mapping[int, int],
) -> None:
    """Check each item's household limit against the other accounts' lines, then write."""
    others = dict(await connection.fetch(
        """SELECT item_id, sum(quantity)::int FROM complex_lines
           WHERE household_id = $1 AND participant_id <> $2 GROUP BY item_id""",
        household_id, participant_id,
    ))
    for item_id, quantity in quantities.items():
        item = complex_order.item(item_id)
        assert item is not None
        taken = others.get(item_id, 0)
        if taken + quantity > item.per_household_limit:
            remaining = max(0, item.per_household_limit - taken)
            raise DomainError(
                "household_limit_exceeded",
                f"item {item_id} allows {item.per_household_limit} per household; {remaining} remain",
                item_id=item_id, limit=item.per_household_limit, remaining=remaining,
            )
    for item_id, quantity in quantities.items():
        if quantity == 0:
            await connection.execute(
                "DELETE FROM complex_lines WHERE participant_id = $1 AND item_id = $2", participant_id, item_id
            )
            continue
        await connection.execute(
            """INSERT INTO complex_lines (participant_id, item_id, household_id, quantity) VALUES ($1, $2, $3, $4)
               ON CONFLICT (participant_id, item_id) DO UPDATE SET quantity = EXCLUDED.quantity""",
            participant_id, item_id, household_id, quantity,
        )


# -- live events ----------------------------------------------------------------------


async def publish(redis: Redis | None, keys: Keys | None, complex_order_id: int, event: str,
                  participant_id: int | None = None) -> None:
    """Publish a `complex` event for the coordinators' live rosters, after the commit.

    PostgreSQL is the record: a failed publish only delays the live roster until
    the coordinator's page reconnects and reads a fresh snapshot.
    """
    if redis is None or keys is None:
        return
    payload = {"type": "complex", "complex_order_id": complex_order_id, "event": event,
               "participant_id": participant_id, "at_ms": int(datetime.now(timezone.utc).timestamp() * 1000)}
    try:
        await redis.publish(keys.events_channel, orjson.dumps(payload))
    except (RedisError, OSError) as error:
        log.warning("complex event not published complex_order_id=%s event=%s error=%s",
                    complex_order_id, event, type(error).__name__)
