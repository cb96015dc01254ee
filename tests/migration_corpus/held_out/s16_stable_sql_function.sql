-- expect:
CREATE OR REPLACE FUNCTION ledger_total(account integer) RETURNS numeric LANGUAGE sql STABLE
    AS 'SELECT sum(amount) FROM ledger_entries WHERE account_id = account';
