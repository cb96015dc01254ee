-- expect: enum-value-used-in-transaction:error
ALTER TYPE ledger_kind ADD VALUE 'refund';
UPDATE ledger_entries SET kind = 'refund' WHERE id = 1;
