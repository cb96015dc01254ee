-- expect:
DROP INDEX ledger_archive_account_id_idx;
