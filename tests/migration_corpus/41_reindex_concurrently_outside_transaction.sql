-- in-transaction: no
-- expect:
REINDEX INDEX CONCURRENTLY ix_ledger_entries_account_id;
