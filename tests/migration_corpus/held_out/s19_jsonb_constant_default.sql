-- expect:
ALTER TABLE ledger_entries ADD COLUMN meta jsonb DEFAULT '{}'::jsonb;
