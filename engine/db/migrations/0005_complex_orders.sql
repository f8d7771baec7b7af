-- Apartment-complex and institution group orders (단지 공동구매, 기관 단체주문).
-- A coordinator opens a complex order; neighbours join as households (building +
-- unit, or department + desk) and order quantities of the offered items. Money is
-- integer won, rates are basis points, times are timestamptz (UTC).

CREATE TABLE complex_orders (
    id                      bigserial PRIMARY KEY,
    code                    text NOT NULL UNIQUE,          -- short join code, e.g. K7MQ2X
    kind                    text NOT NULL CHECK (kind IN ('apartment', 'institution')),
    coordinator_id          bigint NOT NULL REFERENCES users (id),
    complex_name            text NOT NULL,
    road_address            text NOT NULL,                 -- 도로명주소
    pickup_point            text NOT NULL,                 -- e.g. 관리사무소
    delivery_date           date NOT NULL,                 -- in Korea time
    delivery_slot           text NOT NULL,                 -- e.g. 10:00-12:00
    closes_at               timestamptz NOT NULL,
    min_total_won           bigint CHECK (min_total_won > 0),
    free_shipping_from_won  bigint NOT NULL DEFAULT 50000 CHECK (free_shipping_from_won >= 0),
    shipping_fee_won        bigint NOT NULL DEFAULT 4000 CHECK (shipping_fee_won >= 0),
    reward_bp               integer NOT NULL DEFAULT 0 CHECK (reward_bp BETWEEN 0 AND 10000),
    status                  text NOT NULL DEFAULT 'open'
                            CHECK (status IN ('open', 'closed', 'failed', 'cancelled')),
    closed_at               timestamptz,
    closed_by               bigint REFERENCES users (id),  -- NULL: closed by the worker
    arrived_at              timestamptz,                   -- goods arrived at the pickup point
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX complex_orders_open_idx ON complex_orders (closes_at) WHERE status = 'open';
CREATE INDEX complex_orders_coordinator_idx ON complex_orders (coordinator_id);

-- The items offered: approved catalogue products at the product's price.
CREATE TABLE complex_items (
    id                      bigserial PRIMARY KEY,
    complex_order_id        bigint NOT NULL REFERENCES complex_orders (id),
    product_id              bigint NOT NULL REFERENCES products (id),
    supplier_id             bigint NOT NULL REFERENCES suppliers (id),
    name                    text NOT NULL,
    unit                    text NOT NULL,
    unit_price_won          bigint NOT NULL CHECK (unit_price_won > 0),
    per_household_limit     integer NOT NULL CHECK (per_household_limit > 0),
    position                integer NOT NULL DEFAULT 0,
    UNIQUE (complex_order_id, product_id)
);

-- A household: (complex order, building, unit). For institutions building is the
-- department and unit the desk. Its row is locked while a member's lines change,
-- so the accounts of one household share each item's limit.
CREATE TABLE complex_households (
    id                      bigserial PRIMARY KEY,
    complex_order_id        bigint NOT NULL REFERENCES complex_orders (id),
    building                text NOT NULL,
    unit                    text NOT NULL,
    handed_over_at          timestamptz,
    handed_over_by          bigint REFERENCES users (id),
    created_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (complex_order_id, building, unit)
);

CREATE TABLE complex_participants (
    id                      bigserial PRIMARY KEY,
    complex_order_id        bigint NOT NULL REFERENCES complex_orders (id),
    household_id            bigint NOT NULL REFERENCES complex_households (id),
    user_id                 bigint NOT NULL REFERENCES users (id),
    phone                   text NOT NULL CHECK (phone ~ '^[0-9]{9,11}$'),
    shipping_share_won      bigint NOT NULL DEFAULT 0 CHECK (shipping_share_won >= 0),  -- set at the close
    joined_at               timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (complex_order_id, user_id)
);
CREATE INDEX complex_participants_household_idx ON complex_participants (household_id);

CREATE TABLE complex_lines (
    participant_id          bigint NOT NULL REFERENCES complex_participants (id),
    item_id                 bigint NOT NULL REFERENCES complex_items (id),
    household_id            bigint NOT NULL REFERENCES complex_households (id),
    quantity                integer NOT NULL CHECK (quantity > 0),
    refunded_units          integer NOT NULL DEFAULT 0 CHECK (refunded_units >= 0 AND refunded_units <= quantity),
    PRIMARY KEY (participant_id, item_id)
);
CREATE INDEX complex_lines_household_idx ON complex_lines (household_id, item_id);

-- The one shipment to the complex, written at the close.
CREATE TABLE complex_shipments (
    complex_order_id        bigint PRIMARY KEY REFERENCES complex_orders (id),
    goods_total_won         bigint NOT NULL CHECK (goods_total_won >= 0),
    fee_won                 bigint NOT NULL CHECK (fee_won >= 0),
    waived                  boolean NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now()
);

-- A complex order's participant order may mix suppliers (the per-supplier split is
-- in complex_lines and the pick list), so only complex orders may lack a supplier.
ALTER TABLE orders ALTER COLUMN supplier_id DROP NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_supplier_required CHECK (channel = 'complex' OR supplier_id IS NOT NULL);
ALTER TABLE orders ADD COLUMN complex_order_id bigint REFERENCES complex_orders (id);
