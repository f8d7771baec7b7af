"""Every Redis key and channel Jangteo uses, in one place.

A lot's keys carry the hash tag of its shard (`{a7}` for shard 7), and so does the
shard's ledger stream, so one Lua script call can change a lot and append to the
ledger stream on Redis Cluster. Keys not tied to a lot (sessions, rate limits) are
single-key and may live in any slot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str
    shards: int

    def shard_of(self, lot_id: int) -> int:
        return lot_id % self.shards

    def _tag(self, shard: int) -> str:
        return f"{self.prefix}:{{a{shard}}}"

    # -- per lot ---------------------------------------------------------------
    def lot_state(self, lot_id: int) -> str:
        return f"{self._tag(self.shard_of(lot_id))}:lot:{lot_id}"

    def lot_receipts(self, lot_id: int) -> str:
        """Hash of `user_id:client_id` -> accepted receipt, for idempotent retries."""
        return f"{self._tag(self.shard_of(lot_id))}:lot:{lot_id}:receipts"

    def lot_bidders(self, lot_id: int) -> str:
        """Hash of user_id -> that bidder's highest maximum (won)."""
        return f"{self._tag(self.shard_of(lot_id))}:lot:{lot_id}:bidders"

    def lot_rebuild_gate(self, lot_id: int) -> str:
        """When a lost lot was first found missing (ms), to delay its rebuild."""
        return f"{self._tag(self.shard_of(lot_id))}:lot:{lot_id}:rebuild"

    # -- per shard -------------------------------------------------------------
    def ledger_stream(self, shard: int) -> str:
        return f"{self._tag(shard)}:ledger"

    def ends(self, shard: int) -> str:
        """Sorted set of open lot ids scored by their current end (epoch ms)."""
        return f"{self._tag(shard)}:ends"

    def shard_loaded(self, shard: int) -> str:
        """Marker set once a shard's live state was loaded from PostgreSQL."""
        return f"{self._tag(shard)}:loaded"

    def ledger_stream_for_lot(self, lot_id: int) -> str:
        return self.ledger_stream(self.shard_of(lot_id))

    def ends_for_lot(self, lot_id: int) -> str:
        return self.ends(self.shard_of(lot_id))

    # -- per campaign (group buys) -----------------------------------------------
    # Campaigns use their own shard tags ({gN}) and ledger streams, so a campaign's
    # keys and its shard's stream share one Redis Cluster slot.
    def _campaign_tag(self, shard: int) -> str:
        return f"{self.prefix}:{{g{shard}}}"

    def campaign_state(self, campaign_id: int) -> str:
        return f"{self._campaign_tag(self.shard_of(campaign_id))}:campaign:{campaign_id}"

    def campaign_pledges(self, campaign_id: int) -> str:
        """Hash of user_id -> that member's committed units."""
        return f"{self._campaign_tag(self.shard_of(campaign_id))}:campaign:{campaign_id}:pledges"

    def campaign_receipts(self, campaign_id: int) -> str:
        """Hash of `user_id:client_id` -> accepted receipt, for idempotent retries."""
        return f"{self._campaign_tag(self.shard_of(campaign_id))}:campaign:{campaign_id}:receipts"

    def campaign_rebuild_gate(self, campaign_id: int) -> str:
        """When a lost campaign was first found missing (ms), to delay its rebuild."""
        return f"{self._campaign_tag(self.shard_of(campaign_id))}:campaign:{campaign_id}:rebuild"

    def campaign_ledger_stream(self, shard: int) -> str:
        return f"{self._campaign_tag(shard)}:ledger"

    def campaign_ledger_stream_for(self, campaign_id: int) -> str:
        return self.campaign_ledger_stream(self.shard_of(campaign_id))

    def campaign_deadlines(self, shard: int) -> str:
        """Sorted set of open campaign ids scored by deadline (epoch ms)."""
        return f"{self._campaign_tag(shard)}:deadlines"

    def campaign_deadlines_for(self, campaign_id: int) -> str:
        return self.campaign_deadlines(self.shard_of(campaign_id))

    def campaign_shard_loaded(self, shard: int) -> str:
        return f"{self._campaign_tag(shard)}:loaded"

    # -- global ----------------------------------------------------------------
    @property
    def events_channel(self) -> str:
        """Pub/sub channel every live change is published on, for the websocket hubs."""
        return f"{self.prefix}:events"

    def session(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    def user_sessions(self, user_id: int) -> str:
        """Set of a signed-in user's session ids, so staff can end all of them at once."""
        return f"{self.prefix}:user:{user_id}:sessions"

    @property
    def rate_limit_prefix(self) -> str:
        return f"{self.prefix}:ratelimit"

    @property
    def ledger_group(self) -> str:
        return "ledger"
