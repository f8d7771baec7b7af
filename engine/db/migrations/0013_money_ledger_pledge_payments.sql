-- An up-front group-buy payment (`pledge_payments`) takes money before any order
-- exists, so a money-ledger row now belongs to an order or to a pledge payment,
-- never both. A pledge payment's rows carry its full amount, positive:
--   payment     received: a card payment, or a bank transfer staff confirmed;
--   refund      paid back in full: the campaign failed, the pledge was cancelled,
--               the order was cancelled, or nothing was left to pay;
--   settlement  applied to the member's order by a successful close or a later
--               deposit confirmation. From there the order's own rows (sale,
--               overpayment and the refund of the difference) account for it.
-- Per pledge payment, payment - refund - settlement = the won it holds: its amount
-- while `paid`, else 0. `pledge_payments.order_id` names the order a settled
-- payment went to, so per paid order the settlement rows of its payments sum to
-- sale + sale_reversal + overpayment.

ALTER TABLE money_ledger ALTER COLUMN order_id DROP NOT NULL;
ALTER TABLE money_ledger ADD COLUMN pledge_payment_id bigint REFERENCES pledge_payments (id);
ALTER TABLE money_ledger ADD CONSTRAINT money_ledger_owner_check
    CHECK ((order_id IS NULL) <> (pledge_payment_id IS NULL));

ALTER TABLE money_ledger DROP CONSTRAINT money_ledger_entry_check;
ALTER TABLE money_ledger ADD CONSTRAINT money_ledger_entry_check CHECK (
    entry IN ('sale', 'sale_reversal', 'commission', 'commission_reversal', 'refund', 'payout', 'overpayment',
              'payment', 'settlement')
);
ALTER TABLE money_ledger ADD CONSTRAINT money_ledger_pledge_payment_entry_check CHECK (
    CASE WHEN pledge_payment_id IS NULL THEN entry NOT IN ('payment', 'settlement')
         ELSE entry IN ('payment', 'refund', 'settlement') AND amount_won > 0 AND rate_bp IS NULL
    END
);

-- Each pledge payment enters the ledger at most once and leaves it at most once,
-- by a refund or a settlement, so a repeated write raises UniqueViolationError.
CREATE UNIQUE INDEX money_ledger_pledge_payment_in_key ON money_ledger (pledge_payment_id)
    WHERE entry = 'payment';
CREATE UNIQUE INDEX money_ledger_pledge_payment_out_key ON money_ledger (pledge_payment_id)
    WHERE entry IN ('refund', 'settlement');

ALTER TABLE pledge_payments ADD COLUMN order_id bigint REFERENCES orders (id);
CREATE INDEX pledge_payments_order_idx ON pledge_payments (order_id) WHERE order_id IS NOT NULL;

-- Rows written before this migration: link each settled payment to its order (one
-- order per member and campaign, found by its source key), then write the
-- payment, refund and settlement rows of every pledge payment at the time each
-- happened. Only `refund_payment_in_full` refunds a payment in full, and it
-- always keys the refund `pledge_payment:ID:refund`.
UPDATE pledge_payments p SET order_id = o.id
FROM orders o
WHERE p.status = 'settled' AND o.source_key = 'campaign:' || p.campaign_id || ':user:' || p.user_id;

INSERT INTO money_ledger (pledge_payment_id, supplier_id, entry, amount_won, created_at)
SELECT movement.pledge_payment_id, c.supplier_id, movement.entry, movement.amount_won, movement.at
FROM (
    SELECT p.id AS pledge_payment_id, p.campaign_id, 'payment' AS entry, p.amount_won,
           coalesce(p.paid_at, p.created_at) AS at
    FROM pledge_payments p
    WHERE p.status IN ('paid', 'settled', 'refunded')
    UNION ALL
    SELECT p.id, p.campaign_id, 'refund', r.amount_won, r.created_at
    FROM refunds r JOIN pledge_payments p ON p.id = r.payment_id
    WHERE r.source_key = 'pledge_payment:' || r.payment_id || ':refund'
    UNION ALL
    SELECT p.id, p.campaign_id, 'settlement', p.amount_won, coalesce(o.paid_at, o.created_at)
    FROM pledge_payments p JOIN orders o ON o.id = p.order_id
    WHERE p.status = 'settled'
) AS movement
JOIN campaigns c ON c.id = movement.campaign_id
ORDER BY movement.at, movement.pledge_payment_id, movement.entry <> 'payment';

-- A settled payment always names its order, and only a settled one does.
ALTER TABLE pledge_payments ADD CONSTRAINT pledge_payments_settled_order_check
    CHECK ((status = 'settled') = (order_id IS NOT NULL));
