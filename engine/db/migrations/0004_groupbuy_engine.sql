-- Highest sequence number a web process acknowledged to a client per campaign, as
-- `lot_ack_marks` for lots: a rebuild or a close that finds `pledge_events` below
-- it holds the campaign for staff review.
CREATE TABLE campaign_ack_marks (
    campaign_id     bigint PRIMARY KEY REFERENCES campaigns (id),
    seq             bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
