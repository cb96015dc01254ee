-- expect:
ALTER TABLE ledger_entries ALTER COLUMN memo DROP NOT NULL;
