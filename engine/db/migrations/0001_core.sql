-- Core schema: people, suppliers, catalogue, auctions, the bid ledger, sales,
-- orders, commissions, the mail outbox and the staff audit log.
-- Money is integer won (bigint), rates are basis points, times are timestamptz (UTC).

CREATE TABLE suppliers (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL,
    business_no     text NOT NULL UNIQUE,          -- 사업자등록번호, 10 digits
    representative  text NOT NULL,
    phone           text NOT NULL,                 -- digits only
    email           text NOT NULL,
    address         text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('farm', 'manufactured')),
    is_local        boolean NOT NULL,              -- inside the district
    bank_name       text,
    bank_account    text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'approved', 'rejected', 'suspended')),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    email           text NOT NULL,
    password_hash   text NOT NULL,
    display_name    text NOT NULL,
    role            text NOT NULL DEFAULT 'member'
                    CHECK (role IN ('member', 'coordinator', 'supplier', 'staff')),
    supplier_id     bigint REFERENCES suppliers (id),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    locale          text NOT NULL DEFAULT 'ko',
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'supplier') = (supplier_id IS NOT NULL))
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE categories (
    id              bigserial PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    name_ko         text NOT NULL,
    name_en         text NOT NULL,
    parent_id       bigint REFERENCES categories (id)
);

CREATE TABLE products (
    id              bigserial PRIMARY KEY,
    supplier_id     bigint NOT NULL REFERENCES suppliers (id),
    category_id     bigint NOT NULL REFERENCES categories (id),
    name            text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('farm', 'manufactured')),
    is_local        boolean NOT NULL,
    origin_label    text NOT NULL,                 -- 원산지, e.g. 국내산(광주광역시 광산구)
    unit            text NOT NULL,                 -- e.g. 5kg, 1세트
    price_won       bigint NOT NULL CHECK (price_won > 0),
    description     text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'approved', 'rejected', 'retired')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_supplier_idx ON products (supplier_id);

-- One auction lot. `end_at` is the scheduled end; the live (extended) end is in
-- Redis while the lot runs and is copied to `final_end_at` at the close.
CREATE TABLE lots (
    id                  bigserial PRIMARY KEY,
    product_id          bigint NOT NULL REFERENCES products (id),
    supplier_id         bigint NOT NULL REFERENCES suppliers (id),
    title               text NOT NULL,
    quantity            integer NOT NULL DEFAULT 1 CHECK (quantity > 0),
    start_price_won     bigint NOT NULL CHECK (start_price_won > 0),
    reserve_won         bigint CHECK (reserve_won > 0),
    buy_now_won         bigint CHECK (buy_now_won > 0),
    start_at            timestamptz NOT NULL,
    end_at              timestamptz NOT NULL,
    hard_cap_at         timestamptz,
    soft_close_window_s integer NOT NULL DEFAULT 120 CHECK (soft_close_window_s >= 0),
    extension_s         integer NOT NULL DEFAULT 120 CHECK (extension_s >= 0),
    increments          jsonb NOT NULL,            -- [[from_won, step_won], ...] ascending
    status              text NOT NULL DEFAULT 'scheduled'
                        CHECK (status IN ('scheduled', 'open', 'closing', 'sold', 'unsold',
                                          'cancelled', 'held')),
    held_reason         text,
    final_end_at        timestamptz,
    final_seq           bigint,
    created_by          bigint NOT NULL REFERENCES users (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    closed_at           timestamptz,
    CHECK (end_at > start_at),
    CHECK (hard_cap_at IS NULL OR hard_cap_at >= end_at),
    CHECK (buy_now_won IS NULL OR buy_now_won >= start_price_won),
    CHECK (buy_now_won IS NULL OR reserve_won IS NULL OR buy_now_won >= reserve_won)
);
CREATE INDEX lots_status_end_idx ON lots (status, end_at);

-- The record of every accepted action on a lot, in Redis sequence order.
-- kind: bid, buy_now, void (a staff void; `voided_seq` names the bid), extend, cancel, close.
CREATE TABLE lot_events (
    lot_id          bigint NOT NULL REFERENCES lots (id),
    seq             bigint NOT NULL CHECK (seq > 0),
    kind            text NOT NULL CHECK (kind IN ('bid', 'buy_now', 'void', 'extend', 'cancel', 'close')),
    user_id         bigint REFERENCES users (id),
    client_id       text,
    amount_won      bigint,                        -- the bidder's maximum, or the buy-now price
    price_won       bigint,                        -- displayed price after this event
    leader_id       bigint REFERENCES users (id),  -- leader after this event
    end_at          timestamptz,                   -- live end after this event
    voided_seq      bigint,
    server_at       timestamptz NOT NULL,          -- Redis TIME when accepted
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (lot_id, seq)
);
CREATE UNIQUE INDEX lot_events_client_key ON lot_events (lot_id, user_id, client_id)
    WHERE client_id IS NOT NULL;

-- Highest sequence number a web process acknowledged to a client, written when a
-- process sees Redis restart; a close finding the ledger below it holds the lot.
CREATE TABLE lot_ack_marks (
    lot_id          bigint PRIMARY KEY REFERENCES lots (id),
    seq             bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sales (
    id              bigserial PRIMARY KEY,
    lot_id          bigint NOT NULL UNIQUE REFERENCES lots (id),
    buyer_id        bigint NOT NULL REFERENCES users (id),
    price_won       bigint NOT NULL CHECK (price_won > 0),
    channel         text NOT NULL DEFAULT 'auction',
    second_chance   boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id              bigserial PRIMARY KEY,
    order_no        text NOT NULL UNIQUE,
    channel         text NOT NULL CHECK (channel IN ('shop', 'auction', 'groupbuy', 'complex', 'counter')),
    sale_id         bigint UNIQUE REFERENCES sales (id),
    buyer_id        bigint REFERENCES users (id),
    supplier_id     bigint NOT NULL REFERENCES suppliers (id),
    amount_won      bigint NOT NULL CHECK (amount_won >= 0),
    status          text NOT NULL DEFAULT 'awaiting_payment'
                    CHECK (status IN ('awaiting_payment', 'paid', 'cancelled', 'refunded')),
    payment_method  text NOT NULL DEFAULT 'bank_transfer',
    payment_due_at  timestamptz,
    paid_at         timestamptz,
    confirmed_by    bigint REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_buyer_idx ON orders (buyer_id);

-- Commission rates by origin x kind, with effective dates.
CREATE TABLE commission_rules (
    id              bigserial PRIMARY KEY,
    is_local        boolean NOT NULL,
    kind            text CHECK (kind IN ('farm', 'manufactured')),  -- NULL: any kind
    rate_bp         integer NOT NULL CHECK (rate_bp BETWEEN 0 AND 10000),
    effective_from  timestamptz NOT NULL,
    UNIQUE (is_local, kind, effective_from)
);
INSERT INTO commission_rules (is_local, kind, rate_bp, effective_from) VALUES
    (true,  'farm',         400,  '2000-01-01T00:00:00Z'),
    (true,  'manufactured', 500,  '2000-01-01T00:00:00Z'),
    (false, NULL,           1000, '2000-01-01T00:00:00Z');

-- Money ledger: every sale, commission, refund and payout is one row.
CREATE TABLE money_ledger (
    id              bigserial PRIMARY KEY,
    order_id        bigint NOT NULL REFERENCES orders (id),
    supplier_id     bigint NOT NULL REFERENCES suppliers (id),
    entry           text NOT NULL CHECK (entry IN ('sale', 'commission', 'refund', 'commission_reversal', 'payout')),
    amount_won      bigint NOT NULL,
    rate_bp         integer,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- At most one sale row and one commission row per order.
CREATE UNIQUE INDEX money_ledger_once_key ON money_ledger (order_id, entry)
    WHERE entry IN ('sale', 'commission');

CREATE TABLE second_chance_offers (
    id              bigserial PRIMARY KEY,
    lot_id          bigint NOT NULL REFERENCES lots (id),
    user_id         bigint NOT NULL REFERENCES users (id),
    price_won       bigint NOT NULL CHECK (price_won > 0),
    status          text NOT NULL DEFAULT 'offered' CHECK (status IN ('offered', 'accepted', 'declined', 'expired')),
    expires_at      timestamptz NOT NULL,
    created_by      bigint NOT NULL REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (lot_id, user_id)
);

-- Transactional outbox: a row per (event, recipient), written in the transaction
-- that causes the mail; a sender worker delivers and marks it.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    event_key       text NOT NULL,                 -- e.g. lot:42:won
    recipient       text NOT NULL,
    subject         text NOT NULL,
    body_text       text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (event_key, recipient)
);
CREATE INDEX outbox_pending_idx ON outbox (next_attempt_at) WHERE status = 'pending';

CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    actor_id        bigint NOT NULL REFERENCES users (id),
    action          text NOT NULL,
    target_type     text NOT NULL,
    target_id       bigint NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}',
    at              timestamptz NOT NULL DEFAULT now()
);

-- Stored results of state-changing API requests, keyed per user.
CREATE TABLE idempotency_keys (
    user_id         bigint NOT NULL REFERENCES users (id),
    key             text NOT NULL,
    request_hash    text NOT NULL,
    status_code     integer NOT NULL,
    response        jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
