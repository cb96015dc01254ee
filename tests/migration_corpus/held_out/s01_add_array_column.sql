-- expect:
ALTER TABLE ledger_entries ADD COLUMN tags text[];
