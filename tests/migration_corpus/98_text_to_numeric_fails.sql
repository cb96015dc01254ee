-- expect: table-rewrite:error:20000, constraint-violated:error:2000
ALTER TABLE ledger_entries ALTER COLUMN amount_text TYPE numeric USING amount_text::numeric;
