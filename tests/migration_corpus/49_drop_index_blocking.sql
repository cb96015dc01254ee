-- expect: blocking-index-drop:error:20000
DROP INDEX ix_ledger_entries_account_id;
