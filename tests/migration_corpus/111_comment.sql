-- expect:
COMMENT ON TABLE ledger_entries IS 'every movement of money';
