-- Group buys (공동구매): campaigns with price tiers by committed units, and the
-- pledge ledger fed from Redis like the bid ledger. Money is integer won.

CREATE TABLE campaigns (
    id                  bigserial PRIMARY KEY,
    product_id          bigint NOT NULL REFERENCES products (id),
    supplier_id         bigint NOT NULL REFERENCES suppliers (id),
    title               text NOT NULL,
    unit_label          text NOT NULL DEFAULT '',      -- e.g. 1박스(5kg)
    list_price_won      bigint NOT NULL CHECK (list_price_won > 0),
    -- [[min_units, unit_price_won], ...]: thresholds ascending and inclusive,
    -- prices descending, every price at most the list price.
    tiers               jsonb NOT NULL,
    min_total_units     integer NOT NULL CHECK (min_total_units > 0),
    min_buyers          integer CHECK (min_buyers > 0),
    stock_cap_units     integer NOT NULL CHECK (stock_cap_units >= min_total_units),
    per_member_limit    integer NOT NULL CHECK (per_member_limit > 0),
    start_at            timestamptz NOT NULL,
    deadline_at         timestamptz NOT NULL,
    close_when_sold_out boolean NOT NULL DEFAULT false,
    fulfilment          text NOT NULL DEFAULT 'delivery' CHECK (fulfilment IN ('delivery', 'pickup')),
    fulfilment_terms    text NOT NULL DEFAULT '',
    payment_timing      text NOT NULL DEFAULT 'after_success'
                        CHECK (payment_timing IN ('after_success', 'up_front')),
    payment_due_s       integer NOT NULL DEFAULT 172800 CHECK (payment_due_s > 0),
    hold_s              integer NOT NULL DEFAULT 86400 CHECK (hold_s > 0),
    status              text NOT NULL DEFAULT 'scheduled'
                        CHECK (status IN ('scheduled', 'open', 'closing', 'succeeded', 'failed',
                                          'cancelled', 'held')),
    held_reason         text,
    final_unit_price_won bigint,
    final_units         integer,
    final_seq           bigint,
    created_by          bigint NOT NULL REFERENCES users (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    closed_at           timestamptz,
    CHECK (deadline_at > start_at)
);
CREATE INDEX campaigns_status_deadline_idx ON campaigns (status, deadline_at);

-- Every accepted change of a campaign, in Redis sequence order.
-- kind: pledge (new or changed units; 0 units = cancelled), hold_expired (an unpaid
-- up-front hold released), payment_confirmed, close, cancel.
CREATE TABLE pledge_events (
    campaign_id         bigint NOT NULL REFERENCES campaigns (id),
    seq                 bigint NOT NULL CHECK (seq > 0),
    kind                text NOT NULL
                        CHECK (kind IN ('pledge', 'hold_expired', 'payment_confirmed', 'close', 'cancel')),
    user_id             bigint REFERENCES users (id),
    client_id           text,
    units               integer,          -- the member's units after this event
    delta_units         integer,          -- change of the member's units
    committed_units     integer NOT NULL, -- campaign total after this event
    participants        integer NOT NULL, -- members with units > 0 after this event
    server_at           timestamptz NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, seq)
);
CREATE UNIQUE INDEX pledge_events_client_key ON pledge_events (campaign_id, user_id, client_id)
    WHERE client_id IS NOT NULL;

-- One order per source, whatever the channel: 'lot:ID', 'campaign:ID:user:ID', ...
ALTER TABLE orders ADD COLUMN source_key text;
CREATE UNIQUE INDEX orders_source_key ON orders (source_key) WHERE source_key IS NOT NULL;
ALTER TABLE orders ADD COLUMN campaign_id bigint REFERENCES campaigns (id);
ALTER TABLE orders ADD COLUMN units integer CHECK (units > 0);
ALTER TABLE orders ADD COLUMN unit_price_won bigint CHECK (unit_price_won > 0);

-- Up-front payments of pledges (paid at the "at most" price) and every refund.
CREATE TABLE pledge_payments (
    id                  bigserial PRIMARY KEY,
    campaign_id         bigint NOT NULL REFERENCES campaigns (id),
    user_id             bigint NOT NULL REFERENCES users (id),
    units               integer NOT NULL CHECK (units > 0),
    amount_won          bigint NOT NULL CHECK (amount_won > 0),
    method              text NOT NULL DEFAULT 'bank_transfer' CHECK (method IN ('bank_transfer', 'card')),
    status              text NOT NULL DEFAULT 'awaiting_deposit'
                        CHECK (status IN ('awaiting_deposit', 'paid', 'expired', 'refunded', 'settled')),
    depositor_name      text,
    hold_expires_at     timestamptz,
    paid_at             timestamptz,
    confirmed_by        bigint REFERENCES users (id),
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pledge_payments_campaign_idx ON pledge_payments (campaign_id, user_id);

CREATE TABLE refunds (
    id                  bigserial PRIMARY KEY,
    source_key          text NOT NULL UNIQUE,  -- e.g. 'campaign:3:user:9:difference'
    order_id            bigint REFERENCES orders (id),
    payment_id          bigint REFERENCES pledge_payments (id),
    user_id             bigint REFERENCES users (id),
    amount_won          bigint NOT NULL CHECK (amount_won > 0),
    reason              text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
