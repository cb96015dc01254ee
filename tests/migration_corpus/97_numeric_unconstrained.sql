-- expect:
ALTER TABLE ledger_entries ALTER COLUMN amount TYPE numeric;
