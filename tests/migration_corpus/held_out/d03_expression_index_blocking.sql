-- expect: blocking-index-build:error:20000
CREATE INDEX ix_ledger_entries_memo_lower ON ledger_entries (lower(memo));
