-- expect:
ALTER TABLE ledger_entries ADD CONSTRAINT ck_ledger_entries_amount_positive CHECK (amount >= 0) NOT VALID;
