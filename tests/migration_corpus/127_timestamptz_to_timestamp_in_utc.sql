-- expect:
ALTER TABLE ledger_entries ALTER COLUMN created_at TYPE timestamp;
