-- expect: data-loss:error:40
DELETE FROM ledger_entries WHERE account_id = 7;
