"""Tests for the first-start demo data loader, against a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from engine.accounts import verify_password
from engine.demo import DEMO_ACCOUNTS, load_demo_data
from engine.auction.lots import LotDraft, _check_draft
from engine.demo_catalogue import LOTS, DemoLot, business_number_check_digit, is_valid_business_number

NOW = datetime(2025, 9, 1, 9, 0, tzinfo=timezone.utc)

# The default increment table in won: [amount from which the step applies, step].
EXPECTED_INCREMENTS = [[0, 100], [10000, 500], [50000, 1000], [100000, 5000], [500000, 10000], [1000000, 20000]]

# Every table the loader writes, for before/after row counts.
LOADED_TABLES = (
    "categories", "suppliers", "products", "users", "lots", "campaigns", "pledge_events",
    "pledge_payments", "complex_orders", "complex_items", "complex_households",
    "complex_participants", "complex_lines",
)
# Tables that get a fresh round when everything of their kind has ended.
ROUND_TABLES = {
    "lots", "campaigns", "pledge_events", "pledge_payments", "complex_orders", "complex_items",
    "complex_households", "complex_participants", "complex_lines",
}


async def _row_counts(pool: asyncpg.Pool) -> dict[str, int]:
    counts = {}
    for table in LOADED_TABLES:
        counts[table] = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return counts


async def _lots(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT *, increments::text AS increments_text FROM lots ORDER BY id")


# -- catalogue ---------------------------------------------------------------------


async def test_load_demo_data_supplier_counts(demo_pool: asyncpg.Pool) -> None:
    """The loader inserts 48 approved suppliers: 20 farm and 28 manufactured."""
    await load_demo_data(demo_pool, now=NOW)

    rows = await demo_pool.fetch("SELECT kind, status, count(*) AS n FROM suppliers GROUP BY kind, status")
    counts = {(row["kind"], row["status"]): row["n"] for row in rows}

    assert counts == {("farm", "approved"): 20, ("manufactured", "approved"): 28}


async def test_load_demo_data_product_counts(demo_pool: asyncpg.Pool) -> None:
    """The loader inserts 78 farm and 92 manufactured products, all approved."""
    await load_demo_data(demo_pool, now=NOW)

    rows = await demo_pool.fetch("SELECT kind, status, count(*) AS n FROM products GROUP BY kind, status")
    counts = {(row["kind"], row["status"]): row["n"] for row in rows}

    assert counts == {("farm", "approved"): 78, ("manufactured", "approved"): 92}


async def test_load_demo_data_products_match_supplier(demo_pool: asyncpg.Pool) -> None:
    """Every product has its supplier's kind and locality and a positive whole-won price."""
    await load_demo_data(demo_pool, now=NOW)

    mismatched = await demo_pool.fetchval(
        "SELECT count(*) FROM products p JOIN suppliers s ON s.id = p.supplier_id"
        " WHERE p.kind <> s.kind OR p.is_local <> s.is_local"
    )
    prices = await demo_pool.fetch("SELECT price_won FROM products")

    assert mismatched == 0
    assert all(row["price_won"] > 0 for row in prices)


async def test_load_demo_data_top_categories(demo_pool: asyncpg.Pool) -> None:
    """There are exactly the five top categories, each with subcategories holding products."""
    await load_demo_data(demo_pool, now=NOW)

    top = await demo_pool.fetch("SELECT id, code, name_ko FROM categories WHERE parent_id IS NULL")
    names = {row["code"]: row["name_ko"] for row in top}
    products_per_top = await demo_pool.fetch(
        "SELECT parent.code, count(p.id) AS n FROM categories parent"
        " JOIN categories child ON child.parent_id = parent.id"
        " LEFT JOIN products p ON p.category_id = child.id"
        " GROUP BY parent.code"
    )
    products_in_top_level = await demo_pool.fetchval(
        "SELECT count(*) FROM products p JOIN categories c ON c.id = p.category_id WHERE c.parent_id IS NULL"
    )

    assert names == {
        "food": "식품류",
        "household": "생활용품",
        "produce": "과일/채소류",
        "specialty": "특산품",
        "other": "기타",
    }
    assert all(row["n"] > 0 for row in products_per_top)
    assert len(products_per_top) == 5
    assert products_in_top_level == 0


async def test_load_demo_data_business_numbers_valid(demo_pool: asyncpg.Pool) -> None:
    """Every supplier's business number is 10 digits with a correct check digit."""
    await load_demo_data(demo_pool, now=NOW)

    numbers = [row["business_no"] for row in await demo_pool.fetch("SELECT business_no FROM suppliers")]

    assert len(numbers) == 48
    invalid = [number for number in numbers if not is_valid_business_number(number)]
    assert invalid == []


async def test_load_demo_data_supplier_contact_fields(demo_pool: asyncpg.Pool) -> None:
    """Phones are digits only, e-mails use .example, and 3-4 suppliers are outside the district."""
    await load_demo_data(demo_pool, now=NOW)

    rows = await demo_pool.fetch("SELECT phone, email, address, is_local, bank_name, bank_account FROM suppliers")
    outside = [row for row in rows if not row["is_local"]]

    assert all(row["phone"].isdigit() and len(row["phone"]) == 10 for row in rows)
    assert all(row["email"].endswith(".example") for row in rows)
    assert all(row["bank_name"] and row["bank_account"] for row in rows)
    assert all(row["address"].startswith("광주광역시 광산구") for row in rows if row["is_local"])
    assert 3 <= len(outside) <= 4
    assert all(not row["address"].startswith("광주광역시 광산구") for row in outside)


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("1234567891", True),  # check digit 1 worked by hand from the weights
        ("1234567890", False),
        ("123456789", False),
        ("12345678a1", False),
    ],
)
def test_is_valid_business_number_cases(number: str, valid: bool) -> None:
    """The checksum accepts a number with the right check digit and rejects anything else."""
    assert is_valid_business_number(number) is valid


def test_business_number_check_digit_rejects_bad_input() -> None:
    """Asking for a check digit of anything but nine digits raises ValueError."""
    with pytest.raises(ValueError, match="first 9 digits"):
        business_number_check_digit("12345")


# -- accounts ------------------------------------------------------------------------


async def test_load_demo_data_accounts_verify(demo_pool: asyncpg.Pool) -> None:
    """Each returned demo account exists with its role and verifies with its password."""
    accounts = await load_demo_data(demo_pool, now=NOW)

    assert [account.email for account in accounts] == [account.email for account in DEMO_ACCOUNTS]
    for account in accounts:
        row = await demo_pool.fetchrow(
            "SELECT password_hash, role, display_name FROM users WHERE email = $1", account.email
        )
        assert row is not None, account.email
        assert row["role"] == account.role
        assert row["display_name"] == account.display_name
        assert verify_password(row["password_hash"], account.password), account.email
        assert not verify_password(row["password_hash"], account.password + "x"), account.email


async def test_load_demo_data_account_roles(demo_pool: asyncpg.Pool) -> None:
    """Only the supplier account links to a supplier: the laver and anchovy producer."""
    await load_demo_data(demo_pool, now=NOW)

    rows = await demo_pool.fetch(
        "SELECT u.email, u.role, s.name AS supplier_name FROM users u"
        " LEFT JOIN suppliers s ON s.id = u.supplier_id"
    )
    by_email = {row["email"]: row for row in rows}

    assert by_email["supplier@jangteo.example"]["supplier_name"] == "광산햇김상회"
    assert by_email["member1@jangteo.example"]["supplier_name"] is None
    assert by_email["member2@jangteo.example"]["supplier_name"] is None
    assert by_email["coordinator@jangteo.example"]["role"] == "coordinator"
    assert by_email["staff@jangteo.example"]["role"] == "staff"
    members = await demo_pool.fetch("SELECT display_name, supplier_id FROM users WHERE role = 'member'")
    assert {row["display_name"] for row in members} == {
        "김민수", "이서연", "최지훈", "정수빈", "강예린", "윤도현", "장하은", "임재석", "한소희", "오민준",
    }
    assert all(row["supplier_id"] is None for row in members)


# -- lots ------------------------------------------------------------------------------


async def test_load_demo_data_lot_variety(demo_pool: asyncpg.Pool) -> None:
    """The lots include reserve, buy-now, hard-cap, ending-soon, long-running and scheduled ones."""
    await load_demo_data(demo_pool, now=NOW)
    lots = await _lots(demo_pool)

    open_lots = [lot for lot in lots if lot["status"] == "open"]
    scheduled = [lot for lot in lots if lot["status"] == "scheduled"]
    ending_soon = [lot for lot in open_lots if lot["end_at"] - NOW <= timedelta(minutes=6)]
    long_running = [
        lot for lot in open_lots if timedelta(hours=1) <= lot["end_at"] - NOW <= timedelta(hours=3)
    ]
    reserve = [lot for lot in lots if lot["reserve_won"] is not None]
    buy_now = [lot for lot in lots if lot["buy_now_won"] is not None]
    hard_cap = [lot for lot in lots if lot["hard_cap_at"] is not None]

    assert len(lots) == 12
    assert len(open_lots) + len(scheduled) == 12
    assert len(ending_soon) == 3
    assert all(timedelta(minutes=3) <= lot["end_at"] - NOW for lot in ending_soon)
    assert len(long_running) >= 5
    assert len(scheduled) == 2
    assert all(lot["start_at"] == NOW + timedelta(minutes=10) for lot in scheduled)
    assert len(reserve) == 1
    assert reserve[0]["reserve_won"] > reserve[0]["start_price_won"]
    assert len(buy_now) == 1
    assert buy_now[0]["buy_now_won"] > buy_now[0]["start_price_won"]
    assert len(hard_cap) == 1
    assert hard_cap[0]["hard_cap_at"] > hard_cap[0]["end_at"]


async def test_load_demo_data_lot_fields(demo_pool: asyncpg.Pool) -> None:
    """Each lot uses its product's supplier, the staff creator, the default increments and 120 s soft close."""
    await load_demo_data(demo_pool, now=NOW)
    staff_id = await demo_pool.fetchval("SELECT id FROM users WHERE email = 'staff@jangteo.example'")
    lots = await _lots(demo_pool)
    product_suppliers = {
        row["id"]: row["supplier_id"] for row in await demo_pool.fetch("SELECT id, supplier_id FROM products")
    }

    for lot in lots:
        assert lot["supplier_id"] == product_suppliers[lot["product_id"]], lot["title"]
        assert lot["created_by"] == staff_id, lot["title"]
        assert json.loads(lot["increments_text"]) == EXPECTED_INCREMENTS
        assert lot["soft_close_window_s"] == 120
        assert lot["extension_s"] == 120
        assert lot["title"].startswith("[경매] ")
        assert lot["status"] == ("open" if lot["start_at"] <= NOW else "scheduled"), lot["title"]
    assert await demo_pool.fetchval("SELECT count(*) FROM lot_events") == 0


@pytest.mark.parametrize("lot", LOTS, ids=[lot.title for lot in LOTS])
def test_demo_lot_passes_creation_rules(lot: DemoLot) -> None:
    """Each demo lot satisfies the checks a supplier's or staff member's new lot must pass."""
    draft = LotDraft(
        product_id=1,
        title=lot.title,
        start_price_won=lot.start_price_won,
        start_at=NOW + timedelta(seconds=lot.start_offset_s),
        end_at=NOW + timedelta(seconds=lot.end_offset_s),
        quantity=lot.quantity,
        reserve_won=lot.reserve_won,
        buy_now_won=lot.buy_now_won,
        hard_cap_at=None if lot.hard_cap_offset_s is None else NOW + timedelta(seconds=lot.hard_cap_offset_s),
    )

    _check_draft(draft, NOW)


async def test_load_demo_data_supplier_owns_lots(demo_pool: asyncpg.Pool) -> None:
    """The demo supplier account's supplier has lots of its own."""
    await load_demo_data(demo_pool, now=NOW)

    own_lots = await demo_pool.fetchval(
        "SELECT count(*) FROM lots l JOIN users u ON u.supplier_id = l.supplier_id"
        " WHERE u.email = 'supplier@jangteo.example'"
    )

    assert own_lots >= 2


async def test_load_demo_data_server_clock(demo_pool: asyncpg.Pool) -> None:
    """Without `now`, lot times are relative to the PostgreSQL server's clock."""
    before = await demo_pool.fetchval("SELECT now()")
    await load_demo_data(demo_pool)
    after = await demo_pool.fetchval("SELECT now()")

    scheduled_starts = [
        row["start_at"] for row in await demo_pool.fetch("SELECT start_at FROM lots WHERE status = 'scheduled'")
    ]

    assert len(scheduled_starts) == 2
    for start_at in scheduled_starts:
        assert before + timedelta(minutes=10) <= start_at <= after + timedelta(minutes=10)


async def test_load_demo_data_rejects_naive_now(demo_pool: asyncpg.Pool) -> None:
    """A naive `now` raises ValueError and inserts nothing."""
    with pytest.raises(ValueError, match="timezone-aware"):
        await load_demo_data(demo_pool, now=datetime(2025, 9, 1, 9, 0))

    assert await demo_pool.fetchval("SELECT count(*) FROM suppliers") == 0


# -- idempotence -----------------------------------------------------------------------


async def test_load_demo_data_twice_inserts_nothing(demo_pool: asyncpg.Pool) -> None:
    """A second load while demo lots still run returns the same accounts and changes no table."""
    first_accounts = await load_demo_data(demo_pool)
    first_counts = await _row_counts(demo_pool)
    first_lots = [dict(lot) for lot in await _lots(demo_pool)]

    second_accounts = await load_demo_data(demo_pool)

    assert second_accounts == first_accounts
    assert await _row_counts(demo_pool) == first_counts
    assert [dict(lot) for lot in await _lots(demo_pool)] == first_lots


async def test_load_demo_data_reschedules_ended_lots(demo_pool: asyncpg.Pool) -> None:
    """A load after every demo lot ended adds one fresh round of lots and leaves the catalogue and accounts alone."""
    await load_demo_data(demo_pool, now=NOW)
    first_counts = await _row_counts(demo_pool)
    lots_per_round = first_counts["lots"]

    await load_demo_data(demo_pool)
    await load_demo_data(demo_pool)

    counts = await _row_counts(demo_pool)
    assert counts["lots"] == 2 * lots_per_round
    assert {name: n for name, n in counts.items() if name not in ROUND_TABLES} == {
        name: n for name, n in first_counts.items() if name not in ROUND_TABLES
    }
    running = await demo_pool.fetchval(
        "SELECT count(*) FROM lots WHERE status IN ('scheduled', 'open') AND end_at > now()"
    )
    assert running == lots_per_round


async def test_load_demo_data_concurrent_loads(demo_pool: asyncpg.Pool) -> None:
    """Two loads started at once produce a single data set."""
    results = await asyncio.gather(load_demo_data(demo_pool), load_demo_data(demo_pool))

    assert results[0] == results[1]
    assert await _row_counts(demo_pool) == {
        "categories": 24,
        "suppliers": 48,
        "products": 170,
        "users": 13,
        "lots": 12,
        "campaigns": 4,
        "pledge_events": 33,
        "pledge_payments": 6,
        "complex_orders": 1,
        "complex_items": 6,
        "complex_households": 6,
        "complex_participants": 7,
        "complex_lines": 18,
    }


async def test_load_demo_data_deterministic(demo_pool: asyncpg.Pool) -> None:
    """The same catalogue rows come out of every load, so two databases hold identical data."""
    await load_demo_data(demo_pool, now=NOW)
    first = await demo_pool.fetch(
        "SELECT s.name, s.business_no, s.phone, s.bank_account, p.name AS product, p.price_won"
        " FROM products p JOIN suppliers s ON s.id = p.supplier_id ORDER BY p.id"
    )

    # Wipe the demo rows in dependency order, then load again into the same database.
    for table in (
        "complex_lines", "complex_participants", "complex_households", "complex_items", "complex_orders",
        "money_ledger", "pledge_payments", "pledge_events", "campaigns", "lots", "users", "products", "suppliers",
    ):
        await demo_pool.execute(f"DELETE FROM {table}")
    await load_demo_data(demo_pool, now=NOW)
    second = await demo_pool.fetch(
        "SELECT s.name, s.business_no, s.phone, s.bank_account, p.name AS product, p.price_won"
        " FROM products p JOIN suppliers s ON s.id = p.supplier_id ORDER BY p.id"
    )

    assert [tuple(row) for row in second] == [tuple(row) for row in first]
