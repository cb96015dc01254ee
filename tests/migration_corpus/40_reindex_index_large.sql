-- expect: blocking-maintenance:error:20000
REINDEX INDEX ix_ledger_entries_account_id;
