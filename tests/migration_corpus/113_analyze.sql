-- expect:
ANALYZE ledger_entries;
