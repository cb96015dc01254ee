-- expect:
INSERT INTO ledger_archive (account_id, kind, amount) VALUES (1, 'debit', 3);
