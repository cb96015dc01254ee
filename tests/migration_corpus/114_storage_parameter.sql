-- expect:
ALTER TABLE ledger_entries SET (autovacuum_vacuum_scale_factor = 0.01);
