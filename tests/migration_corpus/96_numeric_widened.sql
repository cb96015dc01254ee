-- expect:
ALTER TABLE ledger_entries ALTER COLUMN amount TYPE numeric(14, 2);
