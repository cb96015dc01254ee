-- expect: large-update:error:20000
ALTER TABLE ledger_entries ADD COLUMN amount_cents bigint;
UPDATE ledger_entries SET amount_cents = (amount * 100)::bigint;
