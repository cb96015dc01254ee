-- expect:
ALTER INDEX ix_ledger_entries_account_id RENAME TO ix_ledger_entries_account;
