-- expect:
COMMENT ON COLUMN ledger_entries.memo IS 'free text';
