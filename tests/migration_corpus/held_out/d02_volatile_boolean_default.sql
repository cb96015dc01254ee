-- expect: table-rewrite:error:20000
ALTER TABLE ledger_entries ADD COLUMN flagged boolean NOT NULL DEFAULT random() > 0.5;
