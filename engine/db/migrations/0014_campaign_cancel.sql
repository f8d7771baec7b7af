-- A staff cancel of a group buy: who cancelled it and the reason they gave, which
-- the cancellation mails quote. Both are written in the transaction that cancels
-- the campaign in Redis, so they are set before the close that settles the cancel
-- can lock the row. Both stay NULL when the canceller died between the Redis
-- cancel and its commit; the worker's closer then settles the cancel without a reason.
ALTER TABLE campaigns ADD COLUMN cancel_reason text;
ALTER TABLE campaigns ADD COLUMN cancelled_by bigint REFERENCES users (id);
