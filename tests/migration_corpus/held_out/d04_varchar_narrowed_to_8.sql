-- expect: constraint-violated:error:19901
ALTER TABLE ledger_entries ALTER COLUMN memo TYPE varchar(8);
