"""The Jangteo web process: Starlette pages, the JSON API under /api/v1 and the websocket hub.

Where to add things:
- a page area: a module in `web/routes/` with a `routes` list, added in `web.routes.page_routes`;
- an API area: a module in `web/api/` with an `ApiRoutes` list (each route is also
  registered in the OpenAPI document), added in `web.api.api_routes`;
- an error code: `web.errors.register_error(code, status, msgid)` plus the msgid in both
  catalogs, then `raise ApiError(code, **detail)` from any handler;
- a guard: `web.security.require_user`, `require_role(...)`, `login_required`, `role_required(...)`;
- a rate limit: `await web.ratelimit.check_rate(request, name, rate, identity)`;
- a metric: define it in `web.metrics`.

Per request, middleware sets `request.state.locale`, `.session` (see `web.sessions.Session`),
`.user` (a `CurrentUser` or None) and `.request_id`. The lifespan sets `app.state.settings`,
`.db` (asyncpg pool), `.redis`, `.keys`, `.limiter` and `.templates` (`LocalizedTemplates`).
"""
