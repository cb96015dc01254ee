-- expect:
ALTER TABLE ledger_archive ADD COLUMN sequence_number serial;
