-- expect: table-rewrite:error:20000
ALTER TABLE ledger_entries ALTER COLUMN account_id TYPE bigint;
