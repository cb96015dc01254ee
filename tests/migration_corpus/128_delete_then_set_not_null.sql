-- expect: data-loss:error:5000, set-not-null-scan:error:20000
DELETE FROM ledger_entries WHERE reference IS NULL;
ALTER TABLE ledger_entries ALTER COLUMN reference SET NOT NULL;
