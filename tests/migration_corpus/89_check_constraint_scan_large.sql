-- expect: constraint-scan:error:20000
ALTER TABLE ledger_entries ADD CONSTRAINT ck_ledger_entries_amount CHECK (amount >= 0);
