-- expect: validate-in-same-transaction:error:20000
ALTER TABLE ledger_entries ADD CONSTRAINT ck_ledger_entries_amount CHECK (amount >= 0) NOT VALID;
ALTER TABLE ledger_entries VALIDATE CONSTRAINT ck_ledger_entries_amount;
