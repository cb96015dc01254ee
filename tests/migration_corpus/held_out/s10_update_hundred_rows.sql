-- expect:
UPDATE ledger_entries SET memo = memo || '.' WHERE id <= 100;
