-- expect: blocking-index-build:error:20000, constraint-violated:error:15000
ALTER TABLE ledger_entries ADD CONSTRAINT uq_ledger_entries_reference UNIQUE (reference);
