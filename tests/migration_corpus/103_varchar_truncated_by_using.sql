-- expect: table-rewrite:error:20000, data-loss:error:19901
ALTER TABLE ledger_entries ALTER COLUMN memo TYPE varchar(8) USING left(memo, 8);
