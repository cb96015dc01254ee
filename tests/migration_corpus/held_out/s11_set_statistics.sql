-- expect:
ALTER TABLE ledger_entries ALTER COLUMN amount_text SET STATISTICS 500;
