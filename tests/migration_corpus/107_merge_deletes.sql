-- expect: unclassified:error:30
MERGE INTO products AS p USING (SELECT 'x' AS handle) AS s ON p.handle <> s.handle
WHEN MATCHED THEN DELETE;
