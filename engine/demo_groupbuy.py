"""Demo group-buy campaigns and the demo apartment-complex order, written as PostgreSQL rows.

`engine.demo.load_demo_data` calls these inside its one transaction, before the web and
worker processes start and with no Redis at hand. Each campaign's pledges are therefore
written straight into the `pledge_events` ledger (sequence numbers 1..N, running totals,
server times between the start and the load). The workers and the web process build
the live state in Redis from those rows with `engine.groupbuy.campaigns.load_campaign`,
as they do after a Redis restart, so Redis and the ledger agree. Every pledge is replayed
through `engine.groupbuy.rules.apply_pledge`, the model `pledge.lua` is tested against,
so the rows are what the script would have written, and a table entry the rules would
reject fails the load.

The complex order lives in PostgreSQL only, so its rows are inserted directly. They are
checked with the complex-order input rules, and the demo table keeps each household
within every item's limit.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from engine import demo_catalogue as catalogue
from engine.complexorders import rules as complex_rules
from engine.groupbuy.campaigns import CampaignDraft, check_draft
from engine.groupbuy.payments import record_pledge_ledger_entries
from engine.groupbuy.rules import CampaignState, CampaignTerms, apply_pledge, at_most_price_won

KST = ZoneInfo("Asia/Seoul")

# Campaigns a visitor can still pledge in or watch close; mirrors the worker's active statuses.
_RUNNING_CAMPAIGNS_SQL = (
    "SELECT count(*) FROM campaigns WHERE status IN ('scheduled', 'open', 'closing') AND deadline_at > now()"
)
_OPEN_COMPLEX_ORDERS_SQL = "SELECT count(*) FROM complex_orders WHERE status = 'open' AND closes_at > now()"


async def running_campaign_count(connection: asyncpg.Connection) -> int:
    """Count campaigns that are scheduled, open or closing with their deadline still ahead."""
    return await connection.fetchval(_RUNNING_CAMPAIGNS_SQL)


async def open_complex_order_count(connection: asyncpg.Connection) -> int:
    """Count complex orders that are open and not yet past their closing time."""
    return await connection.fetchval(_OPEN_COMPLEX_ORDERS_SQL)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# -- campaigns --------------------------------------------------------------------------


async def insert_campaigns(
    connection: asyncpg.Connection,
    now: datetime,
    supplier_ids: dict[str, int],
    product_ids: dict[tuple[str, str], int],
    user_ids: dict[str, int],
    *,
    created_by: int,
) -> int:
    """Insert the demo campaigns with their pledge ledgers and return how many were inserted.

    Times are relative to `now`. Raises DomainError when a campaign fails the staff
    creation checks and ValueError when the rules reject one of its pledges.
    """
    for campaign in catalogue.CAMPAIGNS:
        await _insert_campaign(connection, now, campaign, supplier_ids, product_ids, user_ids, created_by)
    return len(catalogue.CAMPAIGNS)


async def _insert_campaign(
    connection: asyncpg.Connection,
    now: datetime,
    campaign: catalogue.DemoCampaign,
    supplier_ids: dict[str, int],
    product_ids: dict[tuple[str, str], int],
    user_ids: dict[str, int],
    created_by: int,
) -> None:
    product_id = product_ids[(campaign.supplier_key, campaign.product_name)]
    supplier_id = supplier_ids[campaign.supplier_key]
    draft = CampaignDraft(
        product_id=product_id,
        title=campaign.title,
        list_price_won=campaign.list_price_won,
        tiers=campaign.tiers,
        min_total_units=campaign.min_total_units,
        stock_cap_units=campaign.stock_cap_units,
        per_member_limit=campaign.per_member_limit,
        start_at=now + timedelta(seconds=campaign.start_offset_s),
        deadline_at=now + timedelta(seconds=campaign.deadline_offset_s),
        min_buyers=campaign.min_buyers,
        close_when_sold_out=campaign.close_when_sold_out,
        unit_label=campaign.unit_label,
        fulfilment=campaign.fulfilment,
        fulfilment_terms=campaign.fulfilment_terms,
        payment_timing=campaign.payment_timing,
    )
    # Run the checks of staff creation, so the demo contains no campaign staff could not create.
    tiers = check_draft(draft, now)
    status = "open" if draft.start_at <= now else "scheduled"

    # Sent as text and cast in SQL, so the insert works whether or not the pool
    # registered a jsonb codec.
    campaign_id = await connection.fetchval(
        """INSERT INTO campaigns (product_id, supplier_id, title, unit_label, list_price_won, tiers,
               min_total_units, min_buyers, stock_cap_units, per_member_limit, start_at,
               deadline_at, close_when_sold_out, fulfilment, fulfilment_terms, payment_timing,
               payment_due_s, hold_s, status, created_by, created_at)
           VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                   $17, $18, $19, $20, $11)
           RETURNING id""",
        product_id, supplier_id, draft.title, draft.unit_label, draft.list_price_won,
        orjson.dumps([list(tier) for tier in tiers]).decode(), draft.min_total_units, draft.min_buyers,
        draft.stock_cap_units, draft.per_member_limit, draft.start_at, draft.deadline_at,
        draft.close_when_sold_out, draft.fulfilment, draft.fulfilment_terms, draft.payment_timing,
        draft.payment_due_s, draft.hold_s, status, created_by,
    )

    terms = CampaignTerms(
        campaign_id=campaign_id,
        supplier_id=supplier_id,
        list_price_won=draft.list_price_won,
        tiers=tiers,
        min_total_units=draft.min_total_units,
        min_buyers=draft.min_buyers,
        stock_cap_units=draft.stock_cap_units,
        per_member_limit=draft.per_member_limit,
        start_ms=_ms(draft.start_at),
        deadline_ms=_ms(draft.deadline_at),
        close_when_sold_out=draft.close_when_sold_out,
    )
    pledged_at = await _insert_pledge_events(connection, terms, campaign, user_ids, draft.start_at, now)
    if draft.payment_timing == "up_front":
        await _insert_up_front_payments(connection, terms, campaign, user_ids, pledged_at, draft.hold_s)


async def _insert_pledge_events(
    connection: asyncpg.Connection,
    terms: CampaignTerms,
    campaign: catalogue.DemoCampaign,
    user_ids: dict[str, int],
    start_at: datetime,
    now: datetime,
) -> dict[int, tuple[int, datetime]]:
    """Replay the campaign's pledges through the rules and store each as a `pledge_events` row.

    Returns each remaining pledger's (units, time of their last pledge).
    """
    state = CampaignState()
    pledged_at: dict[int, tuple[int, datetime]] = {}
    # Spread the pledges evenly between the start and the load, all strictly before the load.
    step = (now - start_at) / (len(campaign.pledges) + 1)
    for index, (email, units) in enumerate(campaign.pledges, start=1):
        user_id = user_ids[email]
        server_at = start_at + step * index
        decision = apply_pledge(terms, state, user_id=user_id, units=units, now_ms=_ms(server_at))
        if not decision.accepted:
            raise ValueError(
                f"demo campaign {campaign.title!r}: pledge {index} ({email}, {units} units)"
                f" is rejected with {decision.code}; fix the table in engine.demo_catalogue"
            )
        state = decision.state
        await connection.execute(
            """INSERT INTO pledge_events (campaign_id, seq, kind, user_id, client_id, units, delta_units,
                                          committed_units, participants, server_at)
               VALUES ($1, $2, 'pledge', $3, $4, $5, $6, $7, $8, $9)""",
            terms.campaign_id, state.seq, user_id, f"demo-{terms.campaign_id}-{state.seq}", units,
            units - decision.previous_units, state.committed_units, state.participants, server_at,
        )
        if units:
            pledged_at[user_id] = (units, server_at)
        else:
            pledged_at.pop(user_id, None)
    return pledged_at


async def _insert_up_front_payments(
    connection: asyncpg.Connection,
    terms: CampaignTerms,
    campaign: catalogue.DemoCampaign,
    user_ids: dict[str, int],
    pledged_at: dict[int, tuple[int, datetime]],
    hold_s: int,
) -> None:
    """Record each pledger's up-front payment at the "at most" price, as `record_up_front_payment` does.

    Card payments are paid at the pledge time, each with its `payment` row in the
    money ledger. A bank transfer awaits its deposit and reserves its units until
    `hold_s` after the pledge. No payment mail is queued.
    """
    price_won = at_most_price_won(terms)
    awaiting = {user_ids[email] for email in campaign.awaiting_deposit}
    names = dict(catalogue.NEIGHBOURS)
    depositors = {user_ids[email]: names[email] for email in campaign.awaiting_deposit}
    for user_id, (units, paid_at) in sorted(pledged_at.items()):
        if user_id in awaiting:
            await connection.execute(
                """INSERT INTO pledge_payments (campaign_id, user_id, units, amount_won, method, status,
                                                depositor_name, hold_expires_at, created_at)
                   VALUES ($1, $2, $3, $4, 'bank_transfer', 'awaiting_deposit', $5, $6, $7)""",
                terms.campaign_id, user_id, units, units * price_won, depositors[user_id],
                paid_at + timedelta(seconds=hold_s), paid_at,
            )
        else:
            payment_id = await connection.fetchval(
                """INSERT INTO pledge_payments (campaign_id, user_id, units, amount_won, method, status,
                                                paid_at, created_at)
                   VALUES ($1, $2, $3, $4, 'card', 'paid', $5, $5)
                   RETURNING id""",
                terms.campaign_id, user_id, units, units * price_won, paid_at,
            )
            await record_pledge_ledger_entries(connection, [payment_id], "payment")


# -- the apartment-complex order ---------------------------------------------------------

_CODE_ATTEMPTS = 10


async def insert_complex_order(
    connection: asyncpg.Connection,
    now: datetime,
    product_ids: dict[tuple[str, str], int],
    user_ids: dict[str, int],
) -> int:
    """Insert the demo apartment-complex order with its items, households and lines; return its id.

    The coordinator account opens it; it closes `closes_offset_s` after `now` and is
    delivered the day after its closing day (Korea time). Raises DomainError when a
    household, phone or text fails the complex-order input rules.
    """
    spec = catalogue.COMPLEX_ORDER
    closes_at = now + timedelta(seconds=spec.closes_offset_s)
    delivery_date = closes_at.astimezone(KST).date() + timedelta(days=spec.delivery_days_after_close)
    opened_at = now - timedelta(hours=2)
    complex_order_id = await _insert_with_code(
        connection,
        user_ids[catalogue.COORDINATOR_EMAIL],
        complex_rules.clean_text(spec.complex_name, "complex_name"),
        complex_rules.clean_text(spec.road_address, "road_address", max_chars=200),
        complex_rules.clean_text(spec.pickup_point, "pickup_point"),
        delivery_date,
        complex_rules.clean_text(spec.delivery_slot, "delivery_slot", max_chars=40),
        closes_at,
        spec.reward_bp,
        opened_at,
    )

    item_ids: dict[str, int] = {}
    for position, item in enumerate(spec.items):
        item_ids[item.product_name] = await connection.fetchval(
            """INSERT INTO complex_items (complex_order_id, product_id, supplier_id, name, unit,
                                          unit_price_won, per_household_limit, position)
               SELECT $1, p.id, p.supplier_id, p.name, p.unit, p.price_won, $3, $4
               FROM products p WHERE p.id = $2
               RETURNING id""",
            complex_order_id, product_ids[(item.supplier_key, item.product_name)],
            item.per_household_limit, position,
        )

    # Neighbours joined one by one during the last two hours.
    step = (now - opened_at) / (len(spec.participants) + 1)
    for index, participant in enumerate(spec.participants, start=1):
        building, unit = complex_rules.parse_household(complex_rules.APARTMENT, participant.building, participant.unit)
        joined_at = opened_at + step * index
        household_id = await connection.fetchval(
            """INSERT INTO complex_households (complex_order_id, building, unit, created_at)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (complex_order_id, building, unit) DO UPDATE SET building = EXCLUDED.building
               RETURNING id""",
            complex_order_id, building, unit, joined_at,
        )
        participant_id = await connection.fetchval(
            """INSERT INTO complex_participants (complex_order_id, household_id, user_id, phone, joined_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $5) RETURNING id""",
            complex_order_id, household_id, user_ids[participant.email],
            complex_rules.parse_phone(participant.phone), joined_at,
        )
        for product_name, quantity in participant.lines:
            await connection.execute(
                """INSERT INTO complex_lines (participant_id, item_id, household_id, quantity)
                   VALUES ($1, $2, $3, $4)""",
                participant_id, item_ids[product_name], household_id, quantity,
            )
    return complex_order_id


async def _insert_with_code(
    connection: asyncpg.Connection,
    coordinator_id: int,
    complex_name: str,
    road_address: str,
    pickup_point: str,
    delivery_date: date,
    delivery_slot: str,
    closes_at: datetime,
    reward_bp: int,
    created_at: datetime,
) -> int:
    """Insert the complex order row under a fresh random join code; a savepoint retries a collision."""
    for _ in range(_CODE_ATTEMPTS):
        try:
            async with connection.transaction():
                return await connection.fetchval(
                    """INSERT INTO complex_orders (code, kind, coordinator_id, complex_name, road_address,
                           pickup_point, delivery_date, delivery_slot, closes_at, reward_bp, created_at)
                       VALUES ($1, 'apartment', $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id""",
                    complex_rules.new_code(), coordinator_id, complex_name, road_address, pickup_point,
                    delivery_date, delivery_slot, closes_at, reward_bp, created_at,
                )
        except asyncpg.UniqueViolationError:
            continue
    raise RuntimeError(f"no free complex order code after {_CODE_ATTEMPTS} attempts")
