-- expect:
ALTER TABLE ledger_entries SET ACCESS METHOD heap;
