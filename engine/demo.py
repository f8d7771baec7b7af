"""First-start demo data: a catalogue, 13 accounts, live auction lots, group buys and a complex order.

`load_demo_data` writes, in one transaction:

- the five top categories (식품류, 생활용품, 과일/채소류, 특산품, 기타) and their
  subcategories;
- 48 approved suppliers, 20 farm and specialty producers with 78 products and 28 small
  factories with 92 products, 4 of them from outside the district (`is_local` false,
  so their sales take the outside-district commission);
- 13 accounts: staff, a supplier account linked to the laver and anchovy producer,
  two members, an apartment-complex coordinator and eight neighbours who pledge in
  the campaigns and join the complex order;
- 12 lots created by the staff account, scheduled relative to the database's clock.
  Seven are open for one to three hours and three end 4-6 minutes after the load, so
  the soft close can be watched. Two open 10 minutes after the load. One has a hidden
  reserve, one a buy-now price and one a hard cap on extensions;
- 4 running group-buy campaigns (laver, kimchi, rice, pears) with their pledge ledgers:
  one two units short of its next tier, one closing 5 minutes after the load, one paid
  up front and one that closes when sold out (`engine.demo_groupbuy`);
- one open apartment-complex order in Gwangsan, opened by the coordinator and closing
  4 hours after the load, with six households and their lines.

The catalogue tables live in `engine.demo_catalogue`. Only PostgreSQL rows are written;
the engine loads the live state of open lots and campaigns into Redis from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import orjson

from engine import demo_catalogue as catalogue
from engine import demo_groupbuy
from engine.accounts import hash_password

log = logging.getLogger("jangteo.demo")

# Serializes concurrent loaders. PostgreSQL releases a pg_advisory_xact_lock at commit or rollback.
_DEMO_LOCK_ID = 0x6A740DE0

STAFF_EMAIL = "staff@jangteo.example"


@dataclass(frozen=True)
class DemoAccount:
    """A demo sign-in, printed by the launcher."""

    role: str
    email: str
    password: str
    display_name: str


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("staff", STAFF_EMAIL, "staff1234!", "장터 운영자"),
    DemoAccount("supplier", "supplier@jangteo.example", "supplier1234!", "정해숙"),
    DemoAccount("member", "member1@jangteo.example", "member1234!", "김민수"),
    DemoAccount("member", "member2@jangteo.example", "member1234!", "이서연"),
    DemoAccount("coordinator", catalogue.COORDINATOR_EMAIL, "coordinator1234!", "박정민"),
    *(
        DemoAccount("member", email, catalogue.NEIGHBOUR_PASSWORD, display_name)
        for email, display_name in catalogue.NEIGHBOURS
    ),
)


async def load_demo_data(pool: asyncpg.Pool, *, now: datetime | None = None) -> list[DemoAccount]:
    """Insert the demo data once per database and return the demo accounts.

    The staff account is the marker: when it exists, the catalogue is not written
    again. Concurrent callers queue on a transaction-level advisory lock, so one
    inserts and the others find the marker once it commits. Lot, campaign and
    complex-order times are relative to `now`, which defaults to the PostgreSQL
    server's `now()`. A later start adds the demo accounts the database lacks. It
    also adds a fresh round of the demo lots, of the campaigns and of the complex
    order for each kind that has nothing running any more, so the demo always has
    something live to watch. If an insert fails, the transaction rolls back and the
    error propagates, leaving the database as it was.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError(
            f"now must be timezone-aware, got naive {now.isoformat()};"
            " pass e.g. datetime.now(timezone.utc) or leave it unset to use the database clock"
        )

    async with pool.acquire() as connection:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _DEMO_LOCK_ID)
            already_loaded = await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1))", STAFF_EMAIL
            )
            if already_loaded:
                added = await _add_fresh_round(connection, now)
                log.info(
                    "demo data already loaded accounts_added=%d lots_added=%d campaigns_added=%d"
                    " complex_orders_added=%d",
                    added.accounts, added.lots, added.campaigns, added.complex_orders,
                )
                return list(DEMO_ACCOUNTS)

            if now is None:
                now = await connection.fetchval("SELECT now()")
            category_ids = await _insert_categories(connection)
            supplier_ids, product_ids = await _insert_suppliers(connection, category_ids)
            user_ids = await _insert_accounts(
                connection, DEMO_ACCOUNTS, supplier_ids[catalogue.DEMO_SUPPLIER_KEY]
            )
            created_by = user_ids[STAFF_EMAIL]
            lot_count = await _insert_lots(connection, now, supplier_ids, product_ids, created_by=created_by)
            campaign_count = await demo_groupbuy.insert_campaigns(
                connection, now, supplier_ids, product_ids, user_ids, created_by=created_by
            )
            complex_order_id = await demo_groupbuy.insert_complex_order(connection, now, product_ids, user_ids)

    log.info(
        "demo data loaded suppliers=%d products=%d accounts=%d lots=%d campaigns=%d complex_order_id=%d",
        len(supplier_ids), len(product_ids), len(user_ids), lot_count, campaign_count, complex_order_id,
    )
    return list(DEMO_ACCOUNTS)


@dataclass(frozen=True)
class _RoundAdded:
    """Counts of rows a later start added to a database that already contains the demo."""

    accounts: int = 0
    lots: int = 0
    campaigns: int = 0
    complex_orders: int = 0


async def _add_fresh_round(connection: asyncpg.Connection, now: datetime | None) -> _RoundAdded:
    """Top up a database that already contains the demo, so every start has something live to show.

    Adds the demo accounts it lacks (a database loaded by an older demo), then a new
    round of lots, of campaigns and of the complex order for each kind that has
    nothing running. A kind with anything running, demo or not, gets nothing.
    """
    accounts = await _insert_missing_accounts(connection)
    lots_running = await connection.fetchval(
        "SELECT count(*) FROM lots WHERE status IN ('scheduled', 'open') AND end_at > now()"
    )
    campaigns_running = await demo_groupbuy.running_campaign_count(connection)
    complex_orders_open = await demo_groupbuy.open_complex_order_count(connection)
    if lots_running and campaigns_running and complex_orders_open:
        return _RoundAdded(accounts=accounts)

    ids = await _catalogue_ids(connection)
    if ids is None:
        return _RoundAdded(accounts=accounts)
    supplier_ids, product_ids = ids
    user_ids = await _demo_user_ids(connection)
    missing = [account.email for account in DEMO_ACCOUNTS if account.email not in user_ids]
    if missing:
        log.warning("demo accounts missing, nothing rescheduled emails=%s", ",".join(missing))
        return _RoundAdded(accounts=accounts)
    if now is None:
        now = await connection.fetchval("SELECT now()")
    created_by = user_ids[STAFF_EMAIL]

    lots = 0
    if not lots_running:
        lots = await _insert_lots(connection, now, supplier_ids, product_ids, created_by=created_by)
    campaigns = 0
    if not campaigns_running:
        # NOTE: the worker loads campaigns into Redis only for shards whose loaded marker
        # is missing, so when Redis kept its data, a fresh round reaches Redis (and the
        # closer) only once a campaign page or a pledge loads it.
        campaigns = await demo_groupbuy.insert_campaigns(
            connection, now, supplier_ids, product_ids, user_ids, created_by=created_by
        )
    complex_orders = 0
    if not complex_orders_open:
        await demo_groupbuy.insert_complex_order(connection, now, product_ids, user_ids)
        complex_orders = 1
    return _RoundAdded(accounts, lots, campaigns, complex_orders)


async def _catalogue_ids(
    connection: asyncpg.Connection,
) -> tuple[dict[str, int], dict[tuple[str, str], int]] | None:
    """Look up the demo suppliers and products by business number and name; None when one is missing."""
    supplier_ids: dict[str, int] = {}
    product_ids: dict[tuple[str, str], int] = {}
    for index, supplier in enumerate(catalogue.SUPPLIERS):
        supplier_id = await connection.fetchval(
            "SELECT id FROM suppliers WHERE business_no = $1", catalogue.business_number(index)
        )
        if supplier_id is None:
            log.warning("demo supplier missing, nothing rescheduled supplier=%s", supplier.key)
            return None
        supplier_ids[supplier.key] = supplier_id
        for product in supplier.products:
            product_ids[(supplier.key, product.name)] = await connection.fetchval(
                "SELECT id FROM products WHERE supplier_id = $1 AND name = $2 ORDER BY id LIMIT 1",
                supplier_id, product.name,
            )
    return supplier_ids, product_ids


async def _demo_user_ids(connection: asyncpg.Connection) -> dict[str, int]:
    """Map the e-mail of each demo account that exists to its user id."""
    rows = await connection.fetch(
        "SELECT id, lower(email) AS email FROM users WHERE lower(email) = ANY($1::text[])",
        [account.email.lower() for account in DEMO_ACCOUNTS],
    )
    by_email = {row["email"]: row["id"] for row in rows}
    return {account.email: by_email[account.email.lower()] for account in DEMO_ACCOUNTS if account.email.lower() in by_email}


async def _insert_missing_accounts(connection: asyncpg.Connection) -> int:
    """Insert the demo accounts the database lacks and return how many were inserted."""
    existing = await _demo_user_ids(connection)
    missing = [account for account in DEMO_ACCOUNTS if account.email not in existing]
    if not missing:
        return 0
    index = next(i for i, supplier in enumerate(catalogue.SUPPLIERS) if supplier.key == catalogue.DEMO_SUPPLIER_KEY)
    demo_supplier_id = await connection.fetchval(
        "SELECT id FROM suppliers WHERE business_no = $1", catalogue.business_number(index)
    )
    if demo_supplier_id is None:
        log.warning("demo supplier missing, supplier account not added supplier=%s", catalogue.DEMO_SUPPLIER_KEY)
        missing = [account for account in missing if account.role != "supplier"]
    inserted = await _insert_accounts(connection, missing, demo_supplier_id)
    return len(inserted)


async def _insert_categories(connection: asyncpg.Connection) -> dict[str, int]:
    """Insert the categories, reusing rows whose code already exists, and map code -> id."""
    ids: dict[str, int] = {}
    for code, name_ko, name_en, parent_code in catalogue.CATEGORIES:
        parent_id = ids[parent_code] if parent_code else None
        # The no-op update makes RETURNING yield the id of an existing row too.
        ids[code] = await connection.fetchval(
            "INSERT INTO categories (code, name_ko, name_en, parent_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (code) DO UPDATE SET code = EXCLUDED.code RETURNING id",
            code, name_ko, name_en, parent_id,
        )
    return ids


async def _insert_suppliers(
    connection: asyncpg.Connection, category_ids: dict[str, int]
) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Insert suppliers and their products.

    Returns supplier ids by supplier key and product ids by (supplier key, product name).
    """
    supplier_ids: dict[str, int] = {}
    product_ids: dict[tuple[str, str], int] = {}
    for index, supplier in enumerate(catalogue.SUPPLIERS):
        bank_name, bank_account = catalogue.supplier_bank(index, supplier)
        supplier_id = await connection.fetchval(
            "INSERT INTO suppliers (name, business_no, representative, phone, email, address,"
            " kind, is_local, bank_name, bank_account, status)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'approved') RETURNING id",
            supplier.name,
            catalogue.business_number(index),
            supplier.representative,
            catalogue.supplier_phone(index, supplier),
            catalogue.supplier_email(supplier),
            supplier.address,
            supplier.kind,
            supplier.is_local,
            bank_name,
            bank_account,
        )
        supplier_ids[supplier.key] = supplier_id

        for product in supplier.products:
            product_ids[(supplier.key, product.name)] = await connection.fetchval(
                "INSERT INTO products (supplier_id, category_id, name, kind, is_local,"
                " origin_label, unit, price_won, description, status)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'approved') RETURNING id",
                supplier_id,
                category_ids[product.category],
                product.name,
                supplier.kind,
                supplier.is_local,
                supplier.origin_label,
                product.unit,
                product.price_won,
                product.description,
            )
    return supplier_ids, product_ids


async def _insert_accounts(
    connection: asyncpg.Connection, accounts: Sequence[DemoAccount], demo_supplier_id: int | None
) -> dict[str, int]:
    """Insert `accounts` with argon2 hashes and map email -> user id.

    The supplier account is linked to `demo_supplier_id`.
    """
    # argon2 takes tens of milliseconds per hash, so hash in threads off the event loop.
    hashes = await asyncio.gather(
        *(asyncio.to_thread(hash_password, account.password) for account in accounts)
    )
    user_ids: dict[str, int] = {}
    for account, password_hash in zip(accounts, hashes):
        supplier_id = demo_supplier_id if account.role == "supplier" else None
        user_ids[account.email] = await connection.fetchval(
            "INSERT INTO users (email, password_hash, display_name, role, supplier_id)"
            " VALUES ($1, $2, $3, $4, $5) RETURNING id",
            account.email, password_hash, account.display_name, account.role, supplier_id,
        )
    return user_ids


async def _insert_lots(
    connection: asyncpg.Connection,
    now: datetime,
    supplier_ids: dict[str, int],
    product_ids: dict[tuple[str, str], int],
    *,
    created_by: int,
) -> int:
    """Insert the demo lots with times relative to `now` and return how many were inserted."""
    # Sent as text and cast in SQL, so the insert works whether or not the pool
    # registered a jsonb codec.
    increments_json = orjson.dumps([list(step) for step in catalogue.DEFAULT_INCREMENTS]).decode()
    for lot in catalogue.LOTS:
        start_at = now + timedelta(seconds=lot.start_offset_s)
        end_at = now + timedelta(seconds=lot.end_offset_s)
        hard_cap_at = (
            now + timedelta(seconds=lot.hard_cap_offset_s) if lot.hard_cap_offset_s is not None else None
        )
        status = "open" if start_at <= now else "scheduled"
        await connection.execute(
            "INSERT INTO lots (product_id, supplier_id, title, quantity, start_price_won,"
            " reserve_won, buy_now_won, start_at, end_at, hard_cap_at, soft_close_window_s,"
            " extension_s, increments, status, created_by)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 120, 120, $11::text::jsonb, $12, $13)",
            product_ids[(lot.supplier_key, lot.product_name)],
            supplier_ids[lot.supplier_key],
            lot.title,
            lot.quantity,
            lot.start_price_won,
            lot.reserve_won,
            lot.buy_now_won,
            start_at,
            end_at,
            hard_cap_at,
            increments_json,
            status,
            created_by,
        )
    return len(catalogue.LOTS)
