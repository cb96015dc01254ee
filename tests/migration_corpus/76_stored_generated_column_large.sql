-- expect: table-rewrite:error:20000
ALTER TABLE ledger_entries ADD COLUMN amount_cents bigint GENERATED ALWAYS AS ((amount * 100)::bigint) STORED;
