-- expect: constraint-violated:error:5000
ALTER TABLE ledger_entries ALTER COLUMN reference SET NOT NULL;
