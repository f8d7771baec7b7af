"""The ledger consumer: copies every accepted action from Redis into PostgreSQL.

One class serves every live object kind, described by a `LedgerSpec`: lots
(`LOT_LEDGER`, shard streams `keys.ledger_stream(n)` into `lot_events`) and group-buy
campaigns (`engine.groupbuy.ledger.CAMPAIGN_LEDGER`, `keys.campaign_ledger_stream(n)`
into `pledge_events`). Each shard's stream is read through the consumer group
`ledger`. Entries are inserted in batches (`ON CONFLICT DO NOTHING`, so a redelivered
entry is a no-op) and acknowledged and deleted from the stream only after the
PostgreSQL commit, so an entry leaves Redis only once it is in the record.

Failure handling:
- PostgreSQL down: nothing is acknowledged; the consumer re-reads its own pending
  entries (id `0`) until they are stored, then reads new ones again (`>`).
- A consumer process died: its pending entries are taken over with XAUTOCLAIM once
  they have been idle for `claim_idle_s`.
- Redis came back without the group (restart without its data): the group is created
  again (MKSTREAM, from id 0).
- Redis reissued a sequence number it had lost (same `(lot_id, seq)`, other content):
  the lot (or campaign) is marked `held` with `held_reason = 'sequence conflict'` for
  staff review.

All commands are single-key, so the consumer works on Redis Cluster. One process
runs one loop per shard, each blocking at most `block_ms` in XREADGROUP, so a new
entry reaches PostgreSQL within one round trip plus one insert.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.keys import Keys

log = logging.getLogger("jangteo.ledger")

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SEQUENCE_CONFLICT = "sequence conflict"
REJECTED_ENTRY = "ledger entry rejected"
ACTION_KINDS = frozenset({"bid", "buy_now"})
# Lot statuses a hold may replace; a lot already sold, unsold or cancelled keeps its status.
HOLDABLE_STATUSES = ("scheduled", "open", "closing")


def ms_to_datetime(epoch_ms: int) -> datetime:
    """Milliseconds since the epoch (Redis TIME) as an aware UTC datetime, exactly."""
    return EPOCH + timedelta(milliseconds=epoch_ms)


@dataclass(frozen=True)
class LedgerEntry:
    """One stream entry, converted to the columns of `lot_events`."""

    stream_id: bytes
    lot_id: int
    seq: int
    kind: str
    user_id: int | None
    client_id: str | None
    amount_won: int | None
    price_won: int | None
    leader_id: int | None
    end_at: datetime | None
    voided_seq: int | None
    server_at: datetime

    @property
    def key(self) -> tuple[int, int]:
        return self.lot_id, self.seq

    def content(self) -> tuple[Any, ...]:
        return (
            self.kind, self.user_id, self.client_id, self.amount_won, self.price_won,
            self.leader_id, self.end_at, self.voided_seq, self.server_at,
        )


def _text(fields: dict[Any, Any], name: str) -> str:
    value = fields.get(name.encode(), fields.get(name))
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _positive_or_none(text: str) -> int | None:
    value = int(text) if text else 0
    return value if value > 0 else None


def parse_entry(stream_id: bytes, fields: dict[Any, Any]) -> LedgerEntry:
    """Convert the fields written by the Lua scripts; raises ValueError when malformed."""
    kind = _text(fields, "kind")
    end_ms = _text(fields, "end_ms")
    amount = _text(fields, "amount")
    return LedgerEntry(
        stream_id=stream_id,
        lot_id=int(_text(fields, "lot")),
        seq=int(_text(fields, "seq")),
        kind=kind,
        user_id=_positive_or_none(_text(fields, "user")),
        client_id=_text(fields, "client") or None,
        amount_won=int(amount) if kind in ACTION_KINDS and amount else None,
        price_won=int(_text(fields, "price") or 0),
        leader_id=_positive_or_none(_text(fields, "leader")),
        end_at=ms_to_datetime(int(end_ms)) if end_ms else None,
        voided_seq=_positive_or_none(_text(fields, "voided_seq")),
        server_at=ms_to_datetime(int(_text(fields, "server_ms"))),
    )


class Entry(Protocol):
    """A parsed stream entry of any ledger: `key` is (owner id, seq)."""

    stream_id: bytes

    @property
    def key(self) -> tuple[int, int]: ...

    def content(self) -> tuple[Any, ...]: ...


@dataclass(frozen=True)
class LedgerSpec:
    """How the stream entries of one kind of live object become rows of its ledger table.

    `insert_sql` takes the arrays of `columns(entries)`, inserts with ON CONFLICT DO
    NOTHING and returns (owner id, seq) of the rows it inserted. `select_sql` takes
    the owner ids and seqs as two arrays and returns owner id, seq, then the stored
    values in the order of `Entry.content()`.
    """

    name: str  # "lot" or "campaign", for log lines
    stream: Callable[[Keys, int], str]
    parse: Callable[[bytes, dict[Any, Any]], Entry]
    insert_sql: str
    select_sql: str
    columns: Callable[[Sequence[Any]], list[list[Any]]]
    hold: Callable[[asyncpg.Connection, int, str], Awaitable[bool]]
    exists_sql: str  # SELECT 1 for the owner id $1


# -- storing ------------------------------------------------------------------------

_INSERT_BATCH = """
INSERT INTO lot_events (lot_id, seq, kind, user_id, client_id, amount_won, price_won,
                        leader_id, end_at, voided_seq, server_at)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[],
                     $6::bigint[], $7::bigint[], $8::bigint[], $9::timestamptz[],
                     $10::bigint[], $11::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING lot_id, seq
"""

_SELECT_STORED = """
SELECT lot_id, seq, kind, user_id, client_id, amount_won, price_won, leader_id, end_at,
       voided_seq, server_at
FROM lot_events
WHERE (lot_id, seq) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))
"""


@dataclass
class StoreResult:
    inserted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected_keys: set[tuple[int, int]] = field(default_factory=set)

    @property
    def rejected(self) -> int:
        return len(self.rejected_keys)


def _columns(entries: Sequence[LedgerEntry]) -> list[list[Any]]:
    return [
        [e.lot_id for e in entries], [e.seq for e in entries], [e.kind for e in entries],
        [e.user_id for e in entries], [e.client_id for e in entries], [e.amount_won for e in entries],
        [e.price_won for e in entries], [e.leader_id for e in entries], [e.end_at for e in entries],
        [e.voided_seq for e in entries], [e.server_at for e in entries],
    ]


async def hold_lot(connection: asyncpg.Connection, lot_id: int, reason: str) -> bool:
    """Mark a lot `held` for staff review unless it is already final; True when it changed."""
    changed = await connection.fetchval(
        "UPDATE lots SET status = 'held', held_reason = $2"
        " WHERE id = $1 AND status = ANY($3::text[]) RETURNING id",
        lot_id, reason, list(HOLDABLE_STATUSES),
    )
    if changed is not None:
        log.warning("lot held lot_id=%s reason=%r", lot_id, reason)
    return changed is not None


LOT_LEDGER = LedgerSpec(
    name="lot",
    stream=lambda keys, shard: keys.ledger_stream(shard),
    parse=parse_entry,
    insert_sql=_INSERT_BATCH,
    select_sql=_SELECT_STORED,
    columns=_columns,
    hold=hold_lot,
    exists_sql="SELECT 1 FROM lots WHERE id = $1",
)


async def store_entries(db: asyncpg.Pool, entries: list[LedgerEntry]) -> StoreResult:
    """Insert entries into `lot_events` in one transaction, holding lots whose sequence conflicts.

    See `store_ledger_entries`.
    """
    return await store_ledger_entries(db, LOT_LEDGER, entries)


async def store_ledger_entries(db: asyncpg.Pool, ledger: LedgerSpec, entries: Sequence[Entry]) -> StoreResult:
    """Insert entries into the ledger's table in one transaction, holding owners whose sequence conflicts.

    An entry whose `(owner id, seq)` is stored with the same content is a redelivery and
    counts as a duplicate. One with other content, or one that collides with another
    sequence number's `(owner id, user_id, client_id)`, means Redis reissued a sequence
    number: the lot or campaign is held. Entries PostgreSQL rejects outright (an
    unknown owner or user) are logged and skipped, holding their owner when it exists.
    """
    result = StoreResult()
    unique: dict[tuple[int, int], Entry] = {}
    repeats: list[Entry] = []
    for entry in entries:
        if entry.key in unique:
            repeats.append(entry)
        else:
            unique[entry.key] = entry
    batch = list(unique.values())
    async with db.acquire() as connection:
        async with connection.transaction():
            try:
                async with connection.transaction():
                    rows = await connection.fetch(ledger.insert_sql, *ledger.columns(batch))
            except asyncpg.IntegrityConstraintViolationError:
                rows = await _insert_one_by_one(connection, ledger, batch, result)
            inserted = {(row[0], row[1]) for row in rows}
            result.inserted = len(inserted)
            leftovers = [e for e in batch if e.key not in inserted and e.key not in result.rejected_keys]
            leftovers += repeats
            if leftovers:
                await _compare_with_stored(connection, ledger, leftovers, result)
    return result


async def _insert_one_by_one(
    connection: asyncpg.Connection, ledger: LedgerSpec, batch: list[Entry], result: StoreResult
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = []
    for entry in batch:
        owner_id, seq = entry.key
        try:
            async with connection.transaction():
                rows.extend(await connection.fetch(ledger.insert_sql, *ledger.columns([entry])))
        except asyncpg.IntegrityConstraintViolationError as error:
            result.rejected_keys.add(entry.key)
            log.error(
                "ledger entry rejected %s_id=%s seq=%s stream_id=%s error=%s",
                ledger.name, owner_id, seq, entry.stream_id.decode(), type(error).__name__,
            )
            if await connection.fetchval(ledger.exists_sql, owner_id):
                await ledger.hold(connection, owner_id, REJECTED_ENTRY)
    return rows


async def _compare_with_stored(
    connection: asyncpg.Connection, ledger: LedgerSpec, leftovers: list[Entry], result: StoreResult
) -> None:
    stored_rows = await connection.fetch(
        ledger.select_sql, [e.key[0] for e in leftovers], [e.key[1] for e in leftovers]
    )
    stored = {(row[0], row[1]): tuple(row)[2:] for row in stored_rows}
    held: set[int] = set()
    for entry in leftovers:
        if stored.get(entry.key) == entry.content():
            result.duplicates += 1
            continue
        result.conflicts += 1
        owner_id, seq = entry.key
        log.error(
            "ledger sequence conflict %s_id=%s seq=%s stream_id=%s",
            ledger.name, owner_id, seq, entry.stream_id.decode(),
        )
        if owner_id not in held:
            held.add(owner_id)
            await ledger.hold(connection, owner_id, SEQUENCE_CONFLICT)


ACKNOWLEDGED_MISSING = "acknowledged sequence missing"


async def hold_if_acknowledged_missing(connection: asyncpg.Connection, lot_id: int) -> bool:
    """Hold a lot whose ack mark exceeds the ledger's last seq; True when it was held now.

    Call before rebuilding a lot in Redis from the ledger: a rebuilt lot would hand
    out the lost sequence numbers again, and a number alone cannot tell the lost
    event from its replacement afterwards.
    """
    behind = await connection.fetchval(
        """SELECT m.seq > coalesce((SELECT max(seq) FROM lot_events e WHERE e.lot_id = m.lot_id), 0)
           FROM lot_ack_marks m WHERE m.lot_id = $1""",
        lot_id,
    )
    if not behind:
        return False
    return await hold_lot(connection, lot_id, ACKNOWLEDGED_MISSING)


async def note_acknowledged(connection: asyncpg.Connection, lot_id: int, seq: int) -> None:
    """Record that a client was given a receipt up to `seq` (kept as the maximum).

    Web processes call this for the lots they acknowledged when they notice that Redis
    restarted, before the lots are rebuilt; a rebuild or a close that finds the ledger
    below the mark holds the lot.
    """
    await connection.execute(
        """INSERT INTO lot_ack_marks (lot_id, seq) VALUES ($1, $2)
           ON CONFLICT (lot_id) DO UPDATE
           SET seq = GREATEST(lot_ack_marks.seq, EXCLUDED.seq), updated_at = now()""",
        lot_id, seq,
    )


# -- consuming ----------------------------------------------------------------------


def consumer_name() -> str:
    """Build a consumer name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class LedgerConsumer:
    """Move the shard streams of one ledger into its table; see the module docstring for failures.

    `ledger` defaults to the lots' (`lot_events`); pass `CAMPAIGN_LEDGER` from
    `engine.groupbuy.ledger` for the campaigns' (`pledge_events`).
    """

    def __init__(
        self,
        db: asyncpg.Pool,
        redis: Redis,
        keys: Keys,
        *,
        name: str | None = None,
        batch_size: int = 500,
        block_ms: int = 1000,
        claim_idle_s: float = 30.0,
        claim_every_s: float = 5.0,
        retry_delay_s: float = 0.5,
        ledger: LedgerSpec = LOT_LEDGER,
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.redis = redis
        self.keys = keys
        self.group = keys.ledger_group
        self.name = name or consumer_name()
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_s = claim_idle_s
        self.claim_every_s = claim_every_s
        self.retry_delay_s = retry_delay_s
        # Per shard: whether this consumer may have pending entries it has not stored.
        self._own_pending: dict[int, bool] = {}

    async def ensure_group(self, shard: int) -> None:
        try:
            await self.redis.xgroup_create(self.ledger.stream(self.keys, shard), self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def consume_once(self, shard: int, *, block_ms: int | None = None) -> int:
        """Read one batch of the shard's stream, store and acknowledge it; return its size.

        Reads this consumer's own pending entries first (left by an earlier failed
        store), then new entries, blocking up to `block_ms` (None: do not block).
        """
        stream = self.ledger.stream(self.keys, shard)
        own_pending = self._own_pending.get(shard, True)
        start_id = "0" if own_pending else ">"
        try:
            reply = await self.redis.xreadgroup(
                self.group, self.name, {stream: start_id}, count=self.batch_size,
                block=None if own_pending else block_ms,
            )
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            log.warning("ledger group missing, creating it ledger=%s shard=%s", self.ledger.name, shard)
            await self.ensure_group(shard)
            return 0
        raw = reply[0][1] if reply else []
        if own_pending and not raw:
            self._own_pending[shard] = False
            return 0
        return await self._store_and_ack(shard, raw)

    async def claim_stale(self, shard: int) -> int:
        """Take over entries idle longer than `claim_idle_s` (their consumer died) and store them."""
        stream = self.ledger.stream(self.keys, shard)
        start = "0-0"
        total = 0
        while True:
            reply = await self.redis.xautoclaim(
                stream, self.group, self.name, int(self.claim_idle_s * 1000), start_id=start,
                count=self.batch_size,
            )
            next_start, claimed = reply[0], reply[1]
            entries = [(entry_id, fields) for entry_id, fields in claimed if entry_id is not None and fields]
            if entries:
                log.info("ledger entries claimed ledger=%s shard=%s count=%s", self.ledger.name, shard, len(entries))
                total += await self._store_and_ack(shard, entries)
            if next_start in (b"0-0", "0-0"):
                return total
            start = next_start

    async def _store_and_ack(self, shard: int, raw: list[tuple[bytes, dict[Any, Any]]]) -> int:
        stream = self.ledger.stream(self.keys, shard)
        entries: list[Entry] = []
        malformed: list[bytes] = []
        for entry_id, fields in raw:
            if not fields:
                # A pending entry whose data was deleted from the stream: nothing to store.
                malformed.append(entry_id)
                continue
            try:
                entries.append(self.ledger.parse(entry_id, fields))
            except (ValueError, KeyError) as error:
                malformed.append(entry_id)
                log.error(
                    "ledger entry malformed ledger=%s shard=%s stream_id=%s error=%s",
                    self.ledger.name, shard, entry_id.decode(), error,
                )
        if entries:
            # If this raises, nothing is acknowledged and the entries are read again.
            self._own_pending[shard] = True
            result = await self.store_entries(entries)
            if result.conflicts or result.rejected:
                log.warning(
                    "ledger batch stored ledger=%s shard=%s inserted=%s duplicates=%s conflicts=%s rejected=%s",
                    self.ledger.name, shard, result.inserted, result.duplicates, result.conflicts, result.rejected,
                )
        ids = [entry.stream_id for entry in entries] + malformed
        if ids:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(stream, self.group, *ids)
            pipe.xdel(stream, *ids)
            await pipe.execute()
        return len(ids)

    async def store_entries(self, entries: list[Entry]) -> StoreResult:
        return await store_ledger_entries(self.db, self.ledger, entries)

    async def drain(self) -> int:
        """Store everything currently in every shard's stream (for tests and shutdown)."""
        total = 0
        for shard in range(self.keys.shards):
            await self.ensure_group(shard)
            while True:
                was_pending = self._own_pending.get(shard, True)
                count = await self.consume_once(shard, block_ms=None)
                total += count
                if count == 0 and not was_pending:
                    break
        return total

    async def _forget_idle_consumers(self, shard: int) -> None:
        """Delete other consumers without pending entries idle for a day (dead processes)."""
        stream = self.ledger.stream(self.keys, shard)
        for consumer in await self.redis.xinfo_consumers(stream, self.group):
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else name
            if name != self.name and consumer["pending"] == 0 and consumer["idle"] > 86_400_000:
                await self.redis.xgroup_delconsumer(stream, self.group, name)

    async def run_shard(self, shard: int, stop: asyncio.Event) -> None:
        """Consume one shard until `stop` is set, surviving Redis and PostgreSQL outages."""
        next_claim = time.monotonic()
        failures = 0
        while not stop.is_set():
            try:
                if failures or shard not in self._own_pending:
                    await self.ensure_group(shard)
                if time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + self.claim_every_s
                    await self.claim_stale(shard)
                    await self._forget_idle_consumers(shard)
                await self.consume_once(shard, block_ms=self.block_ms)
                failures = 0
            except (RedisConnectionError, RedisTimeoutError, OSError, asyncpg.PostgresError,
                    asyncpg.InterfaceError, ResponseError) as error:
                failures += 1
                # Log the first failure of a run and then every 20th, not every retry.
                if failures == 1 or failures % 20 == 0:
                    log.error(
                        "ledger round failed ledger=%s shard=%s failures=%s error=%r",
                        self.ledger.name, shard, failures, error,
                    )
                self._own_pending[shard] = True
                try:
                    await asyncio.wait_for(stop.wait(), timeout=min(5.0, self.retry_delay_s * failures))
                except asyncio.TimeoutError:
                    pass

    async def run(self, stop: asyncio.Event) -> None:
        """Consume every shard concurrently (one loop each) until `stop` is set."""
        log.info(
            "ledger consumer started ledger=%s consumer=%s shards=%s", self.ledger.name, self.name, self.keys.shards
        )
        await asyncio.gather(*(self.run_shard(shard, stop) for shard in range(self.keys.shards)))
        log.info("ledger consumer stopped ledger=%s consumer=%s", self.ledger.name, self.name)
