-- An up-front group-buy payment made at the "at most" price can exceed the order's
-- amount at the final price. The excess is money the buyer paid toward the order
-- and got back, so the money ledger records it as an `overpayment` row (positive,
-- received) with a `refund` row of the same amount (paid back). Per order, then:
-- sale + sale_reversal + overpayment - refund = what the buyer keeps paid (the
-- order's amount), and supplier payout + commission + refunds = what the buyer paid.
ALTER TABLE money_ledger DROP CONSTRAINT money_ledger_entry_check;
ALTER TABLE money_ledger ADD CONSTRAINT money_ledger_entry_check CHECK (
    entry IN ('sale', 'sale_reversal', 'commission', 'commission_reversal', 'refund', 'payout', 'overpayment')
);
