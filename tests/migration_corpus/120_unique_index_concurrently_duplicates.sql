-- in-transaction: no
-- expect: constraint-violated:error:15000
CREATE UNIQUE INDEX CONCURRENTLY uq_ledger_entries_reference ON ledger_entries (reference);
