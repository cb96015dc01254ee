-- expect:
CREATE INDEX ix_ledger_archive_account_id ON ledger_archive (account_id);
