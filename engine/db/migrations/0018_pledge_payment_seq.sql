-- An up-front payment recorded for an accepted pledge now names that pledge by its
-- sequence number in the campaign (the receipt's `seq`, unique per campaign). A
-- retry of the pledge returns the first receipt, so with this key a retry finds the
-- payment the first request recorded, or records it once when the first request
-- failed before it could. Payments written before this migration, and those not
-- recorded for a pledge, keep NULL, which never conflicts.
ALTER TABLE pledge_payments ADD COLUMN pledge_seq bigint CHECK (pledge_seq > 0);
ALTER TABLE pledge_payments ADD CONSTRAINT pledge_payments_pledge_seq_key UNIQUE (campaign_id, pledge_seq);
