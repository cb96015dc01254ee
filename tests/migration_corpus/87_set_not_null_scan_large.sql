-- expect: set-not-null-scan:error:20000
ALTER TABLE ledger_entries ALTER COLUMN memo SET NOT NULL;
