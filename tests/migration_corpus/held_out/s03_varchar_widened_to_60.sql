-- expect:
ALTER TABLE ledger_entries ALTER COLUMN memo TYPE varchar(60);
