-- expect: constraint-violated:error:12000
ALTER TABLE ledger_entries ADD CONSTRAINT ck_ledger_entries_amount_small CHECK (amount < 100);
