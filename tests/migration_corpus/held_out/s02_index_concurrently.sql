-- in-transaction: no
-- expect:
CREATE INDEX CONCURRENTLY ix_ledger_entries_created_at ON ledger_entries (created_at);
