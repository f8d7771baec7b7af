-- A cancelled unpaid order reverses its sale as well as its commission, so an order's
-- ledger rows balance against what the buyer paid: the `sale` and `sale_reversal`
-- rows sum to the amount paid (0 for an order cancelled unpaid), and the commission
-- and its reversal sum to the commission kept.
ALTER TABLE money_ledger DROP CONSTRAINT money_ledger_entry_check;
ALTER TABLE money_ledger ADD CONSTRAINT money_ledger_entry_check CHECK (
    entry IN ('sale', 'sale_reversal', 'commission', 'commission_reversal', 'refund', 'payout')
);

-- At most one sale, one sale reversal and one commission row per order.
DROP INDEX money_ledger_once_key;
CREATE UNIQUE INDEX money_ledger_once_key ON money_ledger (order_id, entry)
    WHERE entry IN ('sale', 'sale_reversal', 'commission');
