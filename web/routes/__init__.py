"""Page routes (HTML), one module per area; `page_routes()` lists them for the app."""

from __future__ import annotations

from starlette.routing import BaseRoute


def page_routes() -> list[BaseRoute]:
    from web.live import sockets
    from web.routes import account, auth, health, home, lots, outbox, staff, staff_orders, supplier
    from web.routes import staff_pledge_payments
    from web.routes import complex as complex_orders
    from web.live import campaign_hub
    from web.routes import campaigns

    # The lot pages come before `home`, so their `/` (the live lot list) and `/staff`
    # (the live console) win over the placeholders there.
    return [
        *health.routes, *auth.routes, *account.routes, *lots.routes, *sockets.routes, *staff.routes, *staff_orders.routes,
        *staff_pledge_payments.routes,
        *outbox.routes,
        *supplier.routes,
        *complex_orders.routes,
        *campaigns.routes, *campaign_hub.routes,
        *home.routes,
    ]
