-- expect:
ALTER TABLE ledger_entries ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}'::jsonb;
