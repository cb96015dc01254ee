-- expect:
ALTER TABLE ledger_entries ADD COLUMN account_ref uuid REFERENCES products (id);
