-- expect:
CREATE VIEW ledger_credits AS SELECT id, amount FROM ledger_entries WHERE kind = 'credit';
