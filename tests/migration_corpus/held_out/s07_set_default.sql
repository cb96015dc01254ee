-- expect:
ALTER TABLE ledger_entries ALTER COLUMN note SET DEFAULT 'none';
