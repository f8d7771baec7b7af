-- The hold expirer selects the payments still awaiting their deposit by hold expiry,
-- and the staff deposit page lists them; both scanned the whole table before. The
-- partial index holds only the payments awaiting a deposit, a small share of all.
CREATE INDEX IF NOT EXISTS pledge_payments_awaiting_hold_idx
    ON pledge_payments (hold_expires_at, id) WHERE status = 'awaiting_deposit';

-- Audit rows are read back by their target (the result of a staff action on one
-- payment, order or campaign).
CREATE INDEX IF NOT EXISTS audit_log_target_idx ON audit_log (target_type, target_id);
