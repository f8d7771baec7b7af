-- Complex orders close into one order per participant and supplier, because the
-- supplier is the seller of record and is settled on its own orders. Each order
-- gets its money-ledger rows at the close. Items may come from running group-buy
-- campaigns, and coordinators may mail their participants.

-- Every new order names its supplier again. NOT VALID keeps rows written under
-- 0005 (complex orders without a supplier) readable, while inserts and updates
-- are checked.
ALTER TABLE orders DROP CONSTRAINT orders_supplier_required;
ALTER TABLE orders ADD CONSTRAINT orders_supplier_required CHECK (supplier_id IS NOT NULL) NOT VALID;

-- An item may be a running campaign's product: a neighbour's line on it is a pledge
-- in that campaign, and the campaign's close makes its order.
ALTER TABLE complex_items ADD COLUMN campaign_id bigint REFERENCES campaigns (id);

-- The commission of each line, fixed at the close (floored to the won). A partial
-- refund reverses floor(commission_won * refunded_units / quantity) in total.
ALTER TABLE complex_lines ADD COLUMN rate_bp integer CHECK (rate_bp BETWEEN 0 AND 10000);
ALTER TABLE complex_lines ADD COLUMN commission_won bigint CHECK (commission_won >= 0);

-- One row per order made by a close: whose it is, which supplier, and how the
-- order's amount splits into goods and the participant's share of the shipping fee.
CREATE TABLE complex_order_parts (
    order_id                bigint PRIMARY KEY REFERENCES orders (id),
    complex_order_id        bigint NOT NULL REFERENCES complex_orders (id),
    participant_id          bigint NOT NULL REFERENCES complex_participants (id),
    supplier_id             bigint NOT NULL REFERENCES suppliers (id),
    goods_won               bigint NOT NULL CHECK (goods_won >= 0),
    shipping_won            bigint NOT NULL CHECK (shipping_won >= 0),
    UNIQUE (participant_id, supplier_id)
);
CREATE INDEX complex_order_parts_complex_idx ON complex_order_parts (complex_order_id);

-- Messages from the coordinator (or staff) to every participant; each recipient's
-- mail is one outbox row with event key complex:{id}:message:{message id}.
CREATE TABLE complex_messages (
    id                      bigserial PRIMARY KEY,
    complex_order_id        bigint NOT NULL REFERENCES complex_orders (id),
    sender_id               bigint NOT NULL REFERENCES users (id),
    subject                 text NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 100),
    body                    text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 2000),
    recipients              integer NOT NULL CHECK (recipients >= 0),
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX complex_messages_recent_idx ON complex_messages (complex_order_id, created_at);
