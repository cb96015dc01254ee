"""Analytics: the reports' pre-aggregates, kept up to date incrementally, and partition upkeep.

- `analytics_dirty_days`: the UTC days that received events since the last refresh, written by a
  statement-level trigger on `events` (one row per day touched, whatever the statement: INSERT,
  COPY, INSERT ... SELECT), so that a refresh re-aggregates only those days.
- Daily rollups: `analytics_funnel_daily`, `analytics_subscriptions_daily`,
  `analytics_revenue_daily`, and the per-subscriber spans `analytics_subscribers` the cohort
  reports read; `analytics_rollup_state` remembers when they were last refreshed.
- `create_event_partition(month)` makes a month's partition even when the default partition
  already holds rows of that month (they are moved into it), and `ensure_event_partitions` is
  redefined on top of it, so that creating partitions ahead never fails.
- Indexes on `purchases.created_at` and `downloads.created_at`: the revenue and downloads
  reports read those tables by date range.

Frozen: SQL written here, nothing imported from afilo_db.

Revision ID: 0005_analytics
Revises: 0004_billing
Create Date: 2026-12-01 21:45:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_analytics"
down_revision: str | None = "0004_billing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATE_EVENT_PARTITION = """
CREATE FUNCTION create_event_partition(month date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  month_start timestamptz := date_trunc('month', month)::timestamp AT TIME ZONE 'UTC';
  month_end timestamptz := (date_trunc('month', month) + interval '1 month')::timestamp
                           AT TIME ZONE 'UTC';
  partition_name text := format('events_p%s', to_char(month, 'YYYYMM'));
  stranded bigint;
BEGIN
  IF to_regclass(partition_name) IS NOT NULL THEN
    RETURN false;
  END IF;
  -- Rows of this month that landed in the default partition would make the new partition's
  -- creation fail: move them aside, create it, put them back (routed into it).
  CREATE TEMPORARY TABLE IF NOT EXISTS afilo_stranded_events (LIKE events) ON COMMIT DROP;
  WITH moved AS (
    DELETE FROM events_default WHERE occurred_at >= month_start AND occurred_at < month_end
    RETURNING *)
  INSERT INTO afilo_stranded_events SELECT * FROM moved;
  GET DIAGNOSTICS stranded = ROW_COUNT;
  EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                 partition_name, month_start, month_end);
  IF stranded > 0 THEN
    INSERT INTO events SELECT * FROM afilo_stranded_events;
    TRUNCATE afilo_stranded_events;
  END IF;
  RETURN true;
END
$$
"""

ENSURE_EVENT_PARTITIONS = """
CREATE OR REPLACE FUNCTION ensure_event_partitions(first_month date, months integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  created integer := 0;
BEGIN
  FOR i IN 0 .. months - 1 LOOP
    IF create_event_partition((date_trunc('month', first_month) + make_interval(months => i))::date)
    THEN
      created := created + 1;
    END IF;
  END LOOP;
  RETURN created;
END
$$
"""

# The body 0001_baseline created, put back on downgrade.
ENSURE_EVENT_PARTITIONS_BASELINE = """
CREATE OR REPLACE FUNCTION ensure_event_partitions(first_month date, months integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  created integer := 0;
  month_start date;
  partition_name text;
BEGIN
  FOR i IN 0 .. months - 1 LOOP
    month_start := (date_trunc('month', first_month) + make_interval(months => i))::date;
    partition_name := format('events_p%s', to_char(month_start, 'YYYYMM'));
    IF to_regclass(partition_name) IS NULL THEN
      EXECUTE format(
        'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
        partition_name,
        month_start::timestamp AT TIME ZONE 'UTC',
        (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC');
      created := created + 1;
    END IF;
  END LOOP;
  RETURN created;
END
$$
"""

# SECURITY DEFINER: whoever may insert events (the service context) marks the days without a
# grant on the bookkeeping table; the search path is pinned so the caller's cannot redirect it.
MARK_DIRTY_DAYS = """
CREATE FUNCTION analytics_mark_dirty_days() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO analytics_dirty_days (day)
  SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date FROM inserted_events
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$
"""

MARK_DIRTY_DAYS_TRIGGER = """
CREATE TRIGGER events_mark_dirty_days AFTER INSERT ON events
REFERENCING NEW TABLE AS inserted_events
FOR EACH STATEMENT EXECUTE FUNCTION analytics_mark_dirty_days()
"""

ROLLUP_TABLES = (
    "analytics_dirty_days",
    "analytics_rollup_state",
    "analytics_funnel_daily",
    "analytics_subscriptions_daily",
    "analytics_revenue_daily",
    "analytics_subscribers",
)
# Read by the service context (back-end jobs); written by the owner's refresh only.
SERVICE_READS = ROLLUP_TABLES[1:]

SECURITY_UP = [
    *(
        statement
        for table in ROLLUP_TABLES
        for statement in (
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        )
    ),
    *(
        statement
        for table in SERVICE_READS
        for statement in (
            f"GRANT SELECT ON {table} TO afilo_service",
            f"CREATE POLICY {table}_service_select ON {table} AS PERMISSIVE FOR SELECT "
            "TO afilo_service\nUSING (true)",
        )
    ),
]


def upgrade() -> None:
    op.create_table(
        "analytics_dirty_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_analytics_dirty_days")),
    )
    op.create_table(
        "analytics_rollup_state",
        sa.Column("id", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id", name=op.f("ck_analytics_rollup_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_rollup_state")),
    )
    op.create_table(
        "analytics_funnel_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("viewed", sa.Integer(), nullable=False),
        sa.Column("carted", sa.Integer(), nullable=False),
        sa.Column("purchased", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "purchased >= 0 AND purchased <= carted AND carted <= viewed",
            name=op.f("ck_analytics_funnel_daily_steps_narrow"),
        ),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_analytics_funnel_daily")),
    )
    op.create_table(
        "analytics_subscriptions_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tier", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("new_mrr", sa.Numeric(), nullable=False),
        sa.Column("upgrades", sa.Integer(), nullable=False),
        sa.Column("expansion_mrr", sa.Numeric(), nullable=False),
        sa.Column("downgrades", sa.Integer(), nullable=False),
        sa.Column("contraction_mrr", sa.Numeric(), nullable=False),
        sa.Column("canceled", sa.Integer(), nullable=False),
        sa.Column("churned_mrr", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "tier", "currency", name=op.f("pk_analytics_subscriptions_daily")
        ),
    )
    op.create_table(
        "analytics_revenue_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("recurring", sa.Numeric(), nullable=False),
        sa.Column("refunds", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("day", "currency", name=op.f("pk_analytics_revenue_daily")),
    )
    op.create_table(
        "analytics_subscribers",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "canceled_at IS NULL OR canceled_at >= started_at",
            name=op.f("ck_analytics_subscribers_period_order"),
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_analytics_subscribers")),
    )
    op.create_index("ix_purchases_created_at", "purchases", ["created_at"], unique=False)
    op.create_index("ix_downloads_created_at", "downloads", ["created_at"], unique=False)
    op.execute(CREATE_EVENT_PARTITION)
    op.execute(ENSURE_EVENT_PARTITIONS)
    op.execute(MARK_DIRTY_DAYS)
    op.execute(MARK_DIRTY_DAYS_TRIGGER)
    # Events already there are aggregated by the first refresh.
    op.execute(
        "INSERT INTO analytics_dirty_days (day) "
        "SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date FROM events"
    )
    for statement in SECURITY_UP:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER events_mark_dirty_days ON events")
    op.execute("DROP FUNCTION analytics_mark_dirty_days()")
    op.execute(ENSURE_EVENT_PARTITIONS_BASELINE)
    op.execute("DROP FUNCTION create_event_partition(date)")
    op.drop_index("ix_downloads_created_at", table_name="downloads")
    op.drop_index("ix_purchases_created_at", table_name="purchases")
    for table in reversed(ROLLUP_TABLES):
        op.drop_table(table)
