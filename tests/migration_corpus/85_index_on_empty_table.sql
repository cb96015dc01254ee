-- expect:
CREATE INDEX ix_ledger_archive_memo ON ledger_archive (memo);
