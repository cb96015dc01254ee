-- expect:
-- expect-before-18: fails-on-copy:error
ALTER TABLE ledger_entries ADD COLUMN amount_cents bigint GENERATED ALWAYS AS ((amount * 100)::bigint) VIRTUAL;
