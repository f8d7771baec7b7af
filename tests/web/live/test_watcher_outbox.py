"""The per-connection outbox: bursts of rows are merged, only a stalled backlog closes the socket."""

from __future__ import annotations

from web.live.connection import Outgoing, Watcher


def make_watcher(**options: int) -> Watcher:
    # The outbox is tested without its writer: `offer` never touches the socket.
    return Watcher(None, lot_id=1, user_id=None, locale="ko", **options)  # type: ignore[arg-type]


def test_burst_of_rows_is_merged_not_cut_off() -> None:
    """A burst of 200 history rows stays queued in order as a few merged messages."""
    watcher = make_watcher(max_pending=32)
    rows = [f"<li>row {n}</li>" for n in range(200)]

    accepted = [watcher.offer(Outgoing(row, 1, n + 1)) for n, row in enumerate(rows)]

    assert all(accepted)
    assert len(watcher._pending) <= 32
    assert "".join(item.text for item in watcher._pending.values()) == "".join(rows)


def test_state_messages_still_coalesce_after_merge() -> None:
    """A newer state message replaces the pending one even after rows were merged around it."""
    watcher = make_watcher(max_pending=4)
    watcher.offer(Outgoing("<p>price 1</p>", 1, 1, ("state", 1)))
    for n in range(10):
        watcher.offer(Outgoing(f"<li>{n}</li>", 1, n + 2))

    watcher.offer(Outgoing("<p>price 2</p>", 1, 12, ("state", 1)))

    texts = [item.text for item in watcher._pending.values()]
    assert "<p>price 2</p>" in texts
    assert "<p>price 1</p>" not in texts


def test_stalled_backlog_over_byte_limit_rejected() -> None:
    """Once the pending text passes the limit, offer returns False so the hub closes the socket."""
    watcher = make_watcher(max_pending=32, max_pending_chars=1_000)
    row = "<li>" + "가" * 90 + "</li>"

    results = [watcher.offer(Outgoing(row, 1, n + 1)) for n in range(20)]

    assert results[0] is True
    assert results[-1] is False
