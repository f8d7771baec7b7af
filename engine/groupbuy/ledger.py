"""The campaigns' ledger: stream entries of the Lua scripts as rows of `pledge_events`.

`CAMPAIGN_LEDGER` plugs into `engine.auction.ledger.LedgerConsumer`, which moves the
campaign shard streams (`keys.campaign_ledger_stream(n)`) into `pledge_events` with
the same guarantees as for lots: stored before acknowledged, redeliveries ignored, and
a campaign held when Redis reissued one of its sequence numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

import asyncpg

from engine.auction.ledger import ACKNOWLEDGED_MISSING, LedgerSpec, ms_to_datetime
from engine.keys import Keys

log = logging.getLogger("jangteo.ledger")

# Campaign statuses a hold may replace; a campaign already final keeps its status.
HOLDABLE_STATUSES = ("scheduled", "open", "closing")
KINDS = frozenset({"pledge", "hold_expired", "payment_confirmed", "close", "cancel"})


@dataclass(frozen=True)
class PledgeEntry:
    """One campaign stream entry, converted to the columns of `pledge_events`."""

    stream_id: bytes
    campaign_id: int
    seq: int
    kind: str
    user_id: int | None
    client_id: str | None
    units: int | None
    delta_units: int | None
    committed_units: int
    participants: int
    server_at: datetime

    @property
    def key(self) -> tuple[int, int]:
        return self.campaign_id, self.seq

    def content(self) -> tuple[Any, ...]:
        return (
            self.kind, self.user_id, self.client_id, self.units, self.delta_units,
            self.committed_units, self.participants, self.server_at,
        )


def _text(fields: dict[Any, Any], name: str) -> str:
    value = fields.get(name.encode(), fields.get(name))
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _int_or_none(text: str) -> int | None:
    return int(text) if text else None


def parse_pledge_entry(stream_id: bytes, fields: dict[Any, Any]) -> PledgeEntry:
    """Convert the fields written by the campaign scripts; raises ValueError when malformed."""
    kind = _text(fields, "kind")
    if kind not in KINDS:
        raise ValueError(f"unknown campaign event kind {kind!r}")
    user = int(_text(fields, "user") or 0)
    return PledgeEntry(
        stream_id=stream_id,
        campaign_id=int(_text(fields, "campaign")),
        seq=int(_text(fields, "seq")),
        kind=kind,
        user_id=user if user > 0 else None,
        client_id=_text(fields, "client") or None,
        units=_int_or_none(_text(fields, "units")),
        delta_units=_int_or_none(_text(fields, "delta")),
        committed_units=int(_text(fields, "committed")),
        participants=int(_text(fields, "participants")),
        server_at=ms_to_datetime(int(_text(fields, "server_ms"))),
    )


_INSERT_BATCH = """
INSERT INTO pledge_events (campaign_id, seq, kind, user_id, client_id, units, delta_units,
                           committed_units, participants, server_at)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[],
                     $6::integer[], $7::integer[], $8::integer[], $9::integer[], $10::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING campaign_id, seq
"""

_SELECT_STORED = """
SELECT campaign_id, seq, kind, user_id, client_id, units, delta_units, committed_units,
       participants, server_at
FROM pledge_events
WHERE (campaign_id, seq) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))
"""


def _columns(entries: Sequence[PledgeEntry]) -> list[list[Any]]:
    return [
        [e.campaign_id for e in entries], [e.seq for e in entries], [e.kind for e in entries],
        [e.user_id for e in entries], [e.client_id for e in entries], [e.units for e in entries],
        [e.delta_units for e in entries], [e.committed_units for e in entries],
        [e.participants for e in entries], [e.server_at for e in entries],
    ]


async def hold_campaign(connection: asyncpg.Connection, campaign_id: int, reason: str) -> bool:
    """Mark a campaign `held` for staff review unless it is already final; True when it changed."""
    changed = await connection.fetchval(
        "UPDATE campaigns SET status = 'held', held_reason = $2"
        " WHERE id = $1 AND status = ANY($3::text[]) RETURNING id",
        campaign_id, reason, list(HOLDABLE_STATUSES),
    )
    if changed is not None:
        log.warning("campaign held campaign_id=%s reason=%r", campaign_id, reason)
    return changed is not None


def _stream(keys: Keys, shard: int) -> str:
    return keys.campaign_ledger_stream(shard)


CAMPAIGN_LEDGER = LedgerSpec(
    name="campaign",
    stream=_stream,
    parse=parse_pledge_entry,
    insert_sql=_INSERT_BATCH,
    select_sql=_SELECT_STORED,
    columns=_columns,
    hold=hold_campaign,
    exists_sql="SELECT 1 FROM campaigns WHERE id = $1",
)


async def hold_campaign_if_acknowledged_missing(connection: asyncpg.Connection, campaign_id: int) -> bool:
    """Hold a campaign whose ack mark exceeds the ledger's last seq; True when it was held now.

    Call before rebuilding a campaign in Redis from `pledge_events`: a rebuilt
    campaign would hand out the lost sequence numbers again.
    """
    behind = await connection.fetchval(
        """SELECT m.seq > coalesce((SELECT max(seq) FROM pledge_events e WHERE e.campaign_id = m.campaign_id), 0)
           FROM campaign_ack_marks m WHERE m.campaign_id = $1""",
        campaign_id,
    )
    if not behind:
        return False
    return await hold_campaign(connection, campaign_id, ACKNOWLEDGED_MISSING)


async def note_campaign_acknowledged(connection: asyncpg.Connection, campaign_id: int, seq: int) -> None:
    """Record that a client was given a receipt up to `seq` (kept as the maximum)."""
    await connection.execute(
        """INSERT INTO campaign_ack_marks (campaign_id, seq) VALUES ($1, $2)
           ON CONFLICT (campaign_id) DO UPDATE
           SET seq = GREATEST(campaign_ack_marks.seq, EXCLUDED.seq), updated_at = now()""",
        campaign_id, seq,
    )
