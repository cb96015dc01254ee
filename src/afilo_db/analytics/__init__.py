"""Analytics: events in, reports out.

- `events`: the catalog of event names and the shape of each one's properties; `track()` for one
  event in the caller's session, `ingest()` for many through COPY.
- `partitions`: monthly partitions created ahead, old months detached and dropped (retention).
- `rollups`: the daily pre-aggregates the reports read, refreshed incrementally (only the days
  that received events since the last refresh).
- `reports`: every report the business reads, as SQL over the rollups and the commerce tables.
- `sources`: which server answers a report: the read replica when it is healthy, the primary
  otherwise, and how stale the answer may be.
- `charts`: the reports drawn with matplotlib, for `afilo-db report` and the studio's dashboard.
- `overview`: the studio's operational figures (rows per table, newest activity).

Layer: above `data` (the overview counts every table with `data.up.table_counts`), below the
studio and the command line, which both call it.
"""
