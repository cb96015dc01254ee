-- expect:
ALTER TABLE ledger_entries SET LOGGED;
