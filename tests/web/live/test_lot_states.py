"""What lot pages and live pushes show once a lot takes no more bids, and their wording."""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from engine.actors import STAFF, Actor
from engine.auction.closing import close_lot
from engine.auction.ledger import LedgerConsumer
from engine.auction.live import AuctionLive
from engine.auction.staff import cancel_lot
from engine.config import Settings
from tests.web.live.conftest import LiveServer, LotFactory, World, receive_until

pytestmark = pytest.mark.slow

FINAL = ("sold", "unsold", "held")


async def short_lot(make_lot: LotFactory, **overrides: object) -> int:
    """Create a lot that ends about a second from now and is never extended by bids."""
    now = datetime.now(timezone.utc)
    values: dict[str, object] = {
        "end_at": now + timedelta(seconds=1),
        "soft_close_window_s": 0,
        "extension_s": 0,
    }
    values.update(overrides)
    return await make_lot(**values)


async def wait_until_due(live: AuctionLive, lot_id: int) -> None:
    """Sleep until Redis time has passed the lot's end."""
    while True:
        snapshot = await live.snapshot(lot_id)
        assert snapshot is not None
        if snapshot.server_ms >= snapshot.end_ms:
            return
        await asyncio.sleep(max(0.01, (snapshot.end_ms - snapshot.server_ms) / 1000))


async def close_now(db: asyncpg.Pool, live: AuctionLive, settings: Settings, lot_id: int) -> str:
    """Close a due lot as the worker does, storing the ledger between rounds, until it is final."""
    await wait_until_due(live, lot_id)
    consumer = LedgerConsumer(db, live.redis, live.keys, block_ms=50, claim_idle_s=0.2)
    for _ in range(20):
        await consumer.drain()
        await close_lot(db, live, settings, lot_id)
        status = await db.fetchval("SELECT status FROM lots WHERE id = $1", lot_id)
        snapshot = await live.snapshot(lot_id)
        if status in FINAL and snapshot is not None and snapshot.status == status:
            return status
    raise AssertionError(f"lot {lot_id} did not become final: {status}")


def price_label(page: str, lot_id: int) -> str:
    match = re.search(rf'id="lot-{lot_id}-price".*?class="lot-price__label">(.*?)</span>', page, re.S)
    assert match, "price region missing"
    return match.group(1).strip()


def end_text(page: str, lot_id: int) -> str:
    match = re.search(rf'id="lot-{lot_id}-end".*?class="lot-end__at">(.*?)</span>', page, re.S)
    assert match, "end region missing"
    return match.group(1).strip()


# -- ended lots ----------------------------------------------------------------------


async def test_sold_lot_shows_result(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients, pg_pool, engine_live, settings
) -> None:
    """A sold lot's page has no bid form; it shows the winning price and the masked winner."""
    lot_id = await short_lot(make_lot)
    bidder = await clients(live_server, world.members[0])
    assert (await bidder.bid(lot_id, 12_000)).status_code == 201
    assert await close_now(pg_pool, engine_live, settings, lot_id) == "sold"

    viewer = await clients(live_server, world.members[1])
    page = (await viewer.http.get(f"/lots/{lot_id}")).text

    assert f'id="lot-{lot_id}-bid-form"' not in page
    assert f'id="lot-{lot_id}-amount"' not in page
    assert "10,000원에 낙찰되었습니다. 낙찰자: 김*수" in page
    assert price_label(page, lot_id) == "낙찰가"
    assert end_text(page, lot_id).startswith("마감: ")
    assert "마감(한국 시간)" not in page


async def test_unsold_without_bids_wording(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients, pg_pool, engine_live, settings
) -> None:
    """A lot that ends without bids says it was not sold for lack of bids, not that it ended at a price."""
    lot_id = await short_lot(make_lot)
    assert await close_now(pg_pool, engine_live, settings, lot_id) == "unsold"

    page = (await (await clients(live_server, None)).http.get(f"/lots/{lot_id}")).text

    assert "입찰 없이 유찰되었습니다." in page
    assert "에 마감되었습니다" not in page
    assert f'id="lot-{lot_id}-bid-form"' not in page
    assert price_label(page, lot_id) == "시작가"


async def test_unsold_below_reserve_wording(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients, pg_pool, engine_live, settings
) -> None:
    """A lot that ends below its reserve says so, and its price label is the final price."""
    lot_id = await short_lot(make_lot, reserve_won=50_000)
    assert (await (await clients(live_server, world.members[0])).bid(lot_id, 20_000)).status_code == 201
    assert await close_now(pg_pool, engine_live, settings, lot_id) == "unsold"

    page = (await (await clients(live_server, world.members[1])).http.get(f"/lots/{lot_id}")).text

    assert "최저낙찰가 미달로 유찰되었습니다." in page
    assert price_label(page, lot_id) == "최종가"


async def test_lot_past_end_hides_form(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients, engine_live
) -> None:
    """A lot whose end passed by the server clock, before the closer ran, shows no bid form."""
    lot_id = await short_lot(make_lot)
    member = await clients(live_server, world.members[0])
    assert (await member.bid(lot_id, 10_000)).status_code == 201
    await wait_until_due(engine_live, lot_id)

    page = (await member.http.get(f"/lots/{lot_id}")).text

    assert f'id="lot-{lot_id}-bid-form"' not in page
    assert "입찰이 마감되었습니다. 결과를 확인하고 있습니다." in page
    assert price_label(page, lot_id) == "최종가"


async def test_cancelled_lot_shows_result(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients, pg_pool, engine_live
) -> None:
    """A cancelled lot's page says so in place of the bid form."""
    lot_id = await make_lot()
    await cancel_lot(pg_pool, engine_live, Actor(world.staff.user_id, STAFF, world.staff.display_name), lot_id)

    page = (await (await clients(live_server, world.members[0])).http.get(f"/lots/{lot_id}")).text

    assert "취소된 경매입니다." in page
    assert f'id="lot-{lot_id}-bid-form"' not in page


async def test_close_push_replaces_bid_form(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients, pg_pool, engine_live, settings
) -> None:
    """The close and settled pushes swap the bid area for the result, so no reload is needed."""
    lot_id = await short_lot(make_lot)
    bidder = await clients(live_server, world.members[0])
    assert (await bidder.bid(lot_id, 12_000)).status_code == 201
    watcher = await clients(live_server, world.members[1])
    async with await watcher.connect(f"/ws/lots/{lot_id}") as socket:
        await socket.recv()
        assert await close_now(pg_pool, engine_live, settings, lot_id) == "sold"

        bidding = f'id="lot-{lot_id}-bidding"'
        closing = await receive_until(socket, lambda text: bidding in text and 'data-status="closing"' in text)
        assert 'hx-swap-oob="true"' in closing
        assert "입찰이 마감되었습니다" in closing
        assert f'id="lot-{lot_id}-min"' not in closing
        assert f'id="lot-{lot_id}-buy-now"' not in closing

        sold = await receive_until(socket, lambda text: bidding in text and 'data-status="sold"' in text)
        assert "10,000원에 낙찰되었습니다. 낙찰자: 김*수" in sold
        assert "낙찰가" in sold


async def test_bid_push_without_reserve_region(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """Bid pushes carry the reserve region only for lots that have a reserve (the page has no target otherwise)."""
    plain = await make_lot()
    reserved = await make_lot(reserve_won=30_000)
    bidder = await clients(live_server, world.members[0])
    watcher = await clients(live_server, world.members[1])
    for lot_id, expected in ((plain, False), (reserved, True)):
        async with await watcher.connect(f"/ws/lots/{lot_id}") as socket:
            snapshot = await socket.recv()
            assert (f'id="lot-{lot_id}-reserve"' in snapshot) is expected
            assert (await bidder.bid(lot_id, 10_000)).status_code == 201
            pushed = await receive_until(socket, lambda text: f'id="lot-{lot_id}-count"' in text)
            assert (f'id="lot-{lot_id}-reserve"' in pushed) is expected
        page = (await watcher.http.get(f"/lots/{lot_id}")).text
        assert (f'id="lot-{lot_id}-reserve"' in page) is expected


# -- wording -------------------------------------------------------------------------


async def test_bid_count_plurals(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """English says "1 bid" and "2 bids"; Korean says "1건" and "2건"."""
    lot_id = await make_lot()
    viewer = await clients(live_server, None)
    assert (await (await clients(live_server, world.members[0])).bid(lot_id, 10_000)).status_code == 201

    english = (await viewer.http.get(f"/lots/{lot_id}?lang=en")).text
    assert re.search(rf'id="lot-{lot_id}-count"[^>]*>1 bid</span>', english)
    korean = (await viewer.http.get(f"/lots/{lot_id}?lang=ko")).text
    assert re.search(rf'id="lot-{lot_id}-count"[^>]*>1건</span>', korean)

    assert (await (await clients(live_server, world.members[1])).bid(lot_id, 11_000)).status_code == 201
    english = (await viewer.http.get(f"/lots/{lot_id}?lang=en")).text
    assert re.search(rf'id="lot-{lot_id}-count"[^>]*>2 bids</span>', english)
    assert "1 bids" not in english


async def test_bid_result_korean_wording(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """The accepted-bid answer and the leader's notice say "최고 입찰자입니다" with no particle after the amount."""
    lot_id = await make_lot(start_price_won=15_000)
    member = await clients(live_server, world.members[0])
    response = await member.http.post(
        f"/lots/{lot_id}/bids",
        data={"amount_won": "20000", "client_id": secrets.token_hex(8)},
        headers={"X-CSRF-Token": member.csrf_token, "HX-Request": "true"},
    )
    assert response.status_code == 200, response.text
    assert "현재가 15,000원, 최고 입찰자입니다." in response.text
    assert "원로" not in response.text

    page = (await member.http.get(f"/lots/{lot_id}")).text
    assert 'data-notice="winning">최고 입찰자입니다.</p>' in page
    assert "입찰 최고가입니다" not in page


async def test_bid_field_is_friendly_server_strict(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """The page's field asks for digits with an example; the form and the API still reject "15,000"."""
    lot_id = await make_lot()
    member = await clients(live_server, world.members[0])
    page = (await member.http.get(f"/lots/{lot_id}")).text
    field = re.search(rf'<input id="lot-{lot_id}-amount"[^>]*>', page, re.S)
    assert field is not None
    assert 'inputmode="numeric"' in field.group(0)
    assert "숫자만 입력 (예: 12500)" in page

    form = await member.http.post(
        f"/lots/{lot_id}/bids",
        data={"amount_won": "15,000", "client_id": secrets.token_hex(8)},
        headers={"X-CSRF-Token": member.csrf_token, "HX-Request": "true"},
    )
    assert form.status_code == 400, form.text
    api = await member.bid(lot_id, "1,000")
    assert api.status_code == 400
    assert api.json()["error"]["code"] == "invalid_amount"


async def test_product_unit_not_repeated(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients, pg_pool
) -> None:
    """A product whose name ends with its unit shows the unit once on the lot page and list."""
    product_id = await pg_pool.fetchval(
        "INSERT INTO products (supplier_id, category_id, name, kind, is_local, origin_label, unit, price_won, status)"
        " SELECT supplier_id, category_id, '광산 햅쌀 10kg', kind, is_local, origin_label, '10kg', 40000, status"
        " FROM products WHERE id = $1 RETURNING id",
        world.product_id,
    )
    lot_id = await make_lot(product_id=product_id, title="햅쌀 경매")
    viewer = await clients(live_server, None)

    page = (await viewer.http.get(f"/lots/{lot_id}")).text
    assert '<span class="lot-product__name">광산 햅쌀 10kg</span>' in page
    assert "10kg 10kg" not in page
    assert "10kg 10kg" not in (await viewer.http.get("/lots")).text

    plain = (await viewer.http.get(f"/lots/{await make_lot()}")).text
    assert '<span class="lot-product__name">광산 햇김 선물세트 1세트</span>' in plain
