-- expect: table-rewrite:error:20000, data-loss:error:15000
ALTER TABLE ledger_entries ALTER COLUMN amount TYPE numeric(12, 0);
