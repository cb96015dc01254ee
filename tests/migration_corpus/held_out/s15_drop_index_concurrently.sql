-- in-transaction: no
-- expect:
DROP INDEX CONCURRENTLY ix_ledger_entries_account_id;
