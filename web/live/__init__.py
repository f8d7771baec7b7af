"""Live auctions on the web side: the websocket hub, fragment rendering and bidding.

`start_live(app)` and `stop_live(app)` run from the app's lifespan: they put an
`AuctionLive` (`app.state.live`) and the process's `LiveHub` (`app.state.hub`) on
the app, and close every websocket with 1012 on shutdown.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from starlette.applications import Starlette

from engine.auction.live import AuctionLive

ACK_FLUSH_INTERVAL_S = 2.0

log = logging.getLogger("jangteo.live")


def auction_live(app: Starlette) -> AuctionLive:
    """Return the app's `AuctionLive`, created on first use on the app's Redis pool."""
    live = getattr(app.state, "live", None)
    if live is None:
        live = AuctionLive(app.state.redis, app.state.keys, batcher=getattr(app.state, "batcher", None))
        app.state.live = live
    return live


async def start_live(app: Starlette) -> None:
    from web.live.hub import LiveHub
    from web.live.render import LotRenderer

    hub = LiveHub(
        redis=app.state.redis, keys=app.state.keys, live=auction_live(app), db=app.state.db,
        renderer=LotRenderer(app.state.templates),
    )
    from web.live.complex_roster import RosterExtension

    app.state.complex_roster = RosterExtension(db=app.state.db, templates=app.state.templates,
                                               max_pending=hub.max_pending)
    hub.add_extension(app.state.complex_roster)
    from web.live.campaign_hub import CampaignExtension, campaign_live

    app.state.campaign_hub = CampaignExtension(db=app.state.db, live=campaign_live(app), templates=app.state.templates,
                                               max_pending=hub.max_pending)
    hub.add_extension(app.state.campaign_hub)
    app.state.hub = hub
    await hub.start()
    app.state.ack_flusher = asyncio.create_task(_flush_acks_forever(app), name="ack-flusher")


async def stop_live(app: Starlette) -> None:
    flusher = getattr(app.state, "ack_flusher", None)
    if flusher is not None:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
        await _flush_acks_once(app)
    hub = getattr(app.state, "hub", None)
    if hub is not None:
        await hub.stop()


async def _flush_acks_once(app: Starlette) -> None:
    from web.live.campaign_hub import campaign_live

    for kind, marks in (("lot", auction_live(app).acks), ("campaign", campaign_live(app).acks)):
        try:
            await marks.flush(app.state.db)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.error("ack marks not saved kind=%s error=%s", kind, type(error).__name__)


async def _flush_acks_forever(app: Starlette) -> None:
    """Copy acknowledged sequence numbers to PostgreSQL every couple of seconds.

    The bid path also flushes at once when Redis stops answering; this loop bounds
    what a process killed together with Redis can leave unsaved.
    """
    while True:
        await asyncio.sleep(ACK_FLUSH_INTERVAL_S)
        await _flush_acks_once(app)
