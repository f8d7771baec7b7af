-- The purge of expired Idempotency-Key results selects its batches by created_at.
-- Without this index each batch scans the whole table. A migration runs in a
-- transaction, so the index cannot be built CONCURRENTLY: the build blocks writes to
-- the table for as long as it takes, which is short because the purge keeps the
-- table to about one retention period of keyed requests.
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at_idx ON idempotency_keys (created_at);
