-- expect: breaking-change:error
ALTER TABLE ledger_entries RENAME COLUMN memo TO description;
