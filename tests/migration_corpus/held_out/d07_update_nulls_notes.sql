-- expect: data-loss:error:4000
UPDATE ledger_entries SET note = NULL WHERE note IS NOT NULL;
