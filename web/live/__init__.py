"""Live auctions on the web side: the websocket hub, fragment rendering and bidding.

`start_live(app)` and `stop_live(app)` run from the app's lifespan: they put an
`AuctionLive` (`app.state.live`) and the process's `LiveHub` (`app.state.hub`) on
the app, and close every websocket with 1012 on shutdown.
"""

from __future__ import annotations

from starlette.applications import Starlette

from engine.auction.live import AuctionLive


def auction_live(app: Starlette) -> AuctionLive:
    """Return the app's `AuctionLive`, created on first use on the app's Redis pool."""
    live = getattr(app.state, "live", None)
    if live is None:
        live = AuctionLive(app.state.redis, app.state.keys)
        app.state.live = live
    return live


async def start_live(app: Starlette) -> None:
    from web.live.hub import LiveHub
    from web.live.render import LotRenderer

    hub = LiveHub(
        redis=app.state.redis, keys=app.state.keys, live=auction_live(app), db=app.state.db,
        renderer=LotRenderer(app.state.templates),
    )
    app.state.hub = hub
    await hub.start()


async def stop_live(app: Starlette) -> None:
    hub = getattr(app.state, "hub", None)
    if hub is not None:
        await hub.stop()
