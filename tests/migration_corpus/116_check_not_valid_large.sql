-- expect:
ALTER TABLE ledger_entries ADD CONSTRAINT ck_ledger_entries_amount CHECK (amount >= 0) NOT VALID;
