-- expect: blocking-maintenance:error:20000
ALTER TABLE ledger_entries SET UNLOGGED;
