-- expect: constraint-violated:error:20000
CREATE DOMAIN memo_text AS text;
ALTER TABLE ledger_entries ADD COLUMN memo2 memo_text;
ALTER DOMAIN memo_text SET NOT NULL;
