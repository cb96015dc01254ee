"""The database's health from PostgreSQL's own statistics and catalogs: the numbers (`queries`),
verdicts against documented thresholds (`verdicts`), the schema's promises checked on the live
database (`promises`) and indexes suggested for the slowest statements (`suggestions`).

Everything here reads: each query runs in a read-only transaction of its own, under a statement
timeout, through the direct URL (a pooler would hand its statistics queries to any server
connection). Layer: reads `db`, `security` and `models`, never what sits above them.
"""
