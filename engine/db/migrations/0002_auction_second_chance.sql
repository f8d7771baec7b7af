-- A lot may be sold twice: once at its close and, when that winner does not pay,
-- once more through a second-chance offer to the runner-up. At most one of each.
ALTER TABLE sales DROP CONSTRAINT sales_lot_id_key;
CREATE UNIQUE INDEX sales_lot_once_key ON sales (lot_id, second_chance);
