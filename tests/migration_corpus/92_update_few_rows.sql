-- expect:
UPDATE ledger_entries SET note = 'checked' WHERE id <= 100;
