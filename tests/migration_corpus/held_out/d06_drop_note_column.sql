-- expect: breaking-change:error, data-loss:error:4000
ALTER TABLE ledger_entries DROP COLUMN note;
