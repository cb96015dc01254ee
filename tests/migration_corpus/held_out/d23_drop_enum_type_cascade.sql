-- expect: breaking-change:error, data-loss:error:20000
DROP TYPE ledger_kind CASCADE;
