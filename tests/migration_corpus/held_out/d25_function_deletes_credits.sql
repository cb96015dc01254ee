-- expect: data-loss:error:6666
CREATE FUNCTION wipe_credits() RETURNS void LANGUAGE sql
    AS 'DELETE FROM ledger_entries WHERE kind = ''credit''';
SELECT wipe_credits();
