-- in-transaction: no
-- expect: blocking-maintenance:error:20000
VACUUM FULL ledger_entries;
