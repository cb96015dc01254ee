-- expect: unclassified:error
MERGE INTO ledger_entries AS l USING (SELECT 7 AS account) AS s ON l.account_id = s.account
WHEN MATCHED THEN UPDATE SET note = 'merged';
