-- in-transaction: no
-- expect: set-not-null-scan:info
ALTER TABLE ledger_entries ADD CONSTRAINT ck_ledger_entries_memo_not_null CHECK (memo IS NOT NULL) NOT VALID;
ALTER TABLE ledger_entries VALIDATE CONSTRAINT ck_ledger_entries_memo_not_null;
ALTER TABLE ledger_entries ALTER COLUMN memo SET NOT NULL;
