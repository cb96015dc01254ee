-- in-transaction: no
-- expect:
VACUUM (ANALYZE) ledger_entries;
