-- expect: table-rewrite:error:20000
ALTER TABLE ledger_entries ADD COLUMN checked_at timestamptz DEFAULT clock_timestamp();
