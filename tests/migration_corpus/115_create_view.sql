-- expect:
CREATE VIEW ledger_totals AS SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id;
