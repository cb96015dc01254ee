-- expect: blocking-index-build:error:20000, constraint-violated:error
ALTER TABLE ledger_entries ADD CONSTRAINT uq_ledger_entries_reference UNIQUE (reference);
