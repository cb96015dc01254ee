-- expect: data-loss:error:20000
TRUNCATE ledger_entries;
