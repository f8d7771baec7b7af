"""The Jangteo web process: Starlette pages, the JSON API and (later) the websocket hub."""
