-- expect:
ALTER TABLE ledger_entries ADD CONSTRAINT ck_ledger_entries_memo_length CHECK (length(memo) <= 40) NOT VALID;
