-- expect:
ALTER TABLE ledger_entries ADD COLUMN reviewed_at timestamptz DEFAULT now();
