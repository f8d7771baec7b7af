-- A group-buy order of an up-front campaign can be paid partly by the member's
-- up-front pledge payments and partly by a bank transfer of the remainder to the
-- order itself. Each order now records both parts:
--   prepaid_won  the member's paid up-front payments credited to the order. The
--                close sets it, and a pledge deposit confirmed after the close
--                raises it. While the order awaits payment, amount_won - prepaid_won
--                is the remainder the member still has to transfer. Once the order
--                is paid, the settled payments' `settlement` rows sum to it. It is 0
--                for orders of other channels.
--   deposit_won  the bank transfer staff confirmed for the order, in won as
--                received. NULL until staff confirm one, for orders paid by
--                up-front payments alone, and for orders confirmed before this
--                migration. A transfer beyond the remainder is refunded on the
--                order: an `overpayment` and a `refund` row in the money ledger.
-- So for a paid order: prepaid_won + deposit_won = sale + overpayment.
ALTER TABLE orders ADD COLUMN prepaid_won bigint NOT NULL DEFAULT 0 CHECK (prepaid_won >= 0);
ALTER TABLE orders ADD COLUMN deposit_won bigint CHECK (deposit_won > 0);

-- Orders written before this migration: an order awaiting payment is credited with
-- its member's paid payments in the campaign, and a paid order with the payments
-- settled into it.
-- NOTE: a group-buy order that staff confirmed before this migration while its
-- member had paid up-front payments left those payments `paid`. Whether that
-- member transferred the remainder or the whole amount is not recorded, so those
-- payments stay as they are for staff to settle or refund by hand.
UPDATE orders o SET prepaid_won = paid.won
FROM (
    SELECT p.campaign_id, p.user_id, sum(p.amount_won) AS won
    FROM pledge_payments p
    WHERE p.status = 'paid'
    GROUP BY p.campaign_id, p.user_id
) AS paid
WHERE o.status = 'awaiting_payment' AND o.campaign_id = paid.campaign_id AND o.buyer_id = paid.user_id;

UPDATE orders o SET prepaid_won = settled.won
FROM (
    SELECT p.order_id, sum(p.amount_won) AS won
    FROM pledge_payments p
    WHERE p.status = 'settled'
    GROUP BY p.order_id
) AS settled
WHERE o.id = settled.order_id;
