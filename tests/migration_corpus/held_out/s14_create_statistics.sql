-- expect:
CREATE STATISTICS st_ledger_entries_account_kind ON account_id, kind FROM ledger_entries;
