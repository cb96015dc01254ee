-- expect: table-rewrite:error:20000, data-loss:error:2000
ALTER TABLE ledger_entries ALTER COLUMN amount_text TYPE numeric USING nullif(amount_text, 'n/a')::numeric;
