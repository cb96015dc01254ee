-- expect: large-update:error:20000
UPDATE ledger_entries SET note = 'checked';
