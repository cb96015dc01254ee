"""Analytics from the billing truth: money facts from Stripe's events, rollups that follow
corrections, and behaviour events that name only users and products that exist.

- The money rollups fed by application-tracked events (`analytics_subscriptions_daily`,
  `analytics_revenue_daily`, `analytics_subscribers`) are dropped: MRR, churn and cohorts are
  read from the subscription history (`user_subscriptions`) the webhook handlers write.
- `analytics_payments`: one row per payment or refund, written by a trigger on `webhook_events`
  in the transaction of the Stripe event that reports it (a refused event rolls back with it),
  dated by Stripe's time: an invoice by when it was paid, a one-off payment by its event, a
  refund by the event that reported it (the increase of the charge's amount_refunded, so partial
  refunds and refunds of invoices count too). Deleting the event deletes its facts. The facts
  hold no personal data, so erasing a user (which blanks the event's payload) keeps the revenue.
- `events`: updated and deleted rows mark their days for the next refresh, as inserts do.
- `analytics_unknown_references(users, products)`: the ids among those given that name no user
  or product, whoever asks (the events a user may track name products row-level security may
  hide from them).

Frozen: SQL written here, nothing imported from afilo_db.

Revision ID: 0016_analytics_from_billing
Revises: 0015_stripe_ids_event_outcomes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_analytics_from_billing"
down_revision = "0015_stripe_ids_event_outcomes"
branch_labels = None
depends_on = None

DROPPED_ROLLUPS = (
    "analytics_subscriptions_daily",
    "analytics_revenue_daily",
    "analytics_subscribers",
)

# SECURITY DEFINER: the service context that stores the event writes the fact without a grant on
# the table; the search path is pinned so the caller's cannot redirect it.
RECORD_PAYMENT = """
CREATE FUNCTION analytics_record_stripe_payment(event webhook_events) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  obj jsonb := event.payload::jsonb -> 'data' -> 'object';
  kind text;
  reference text;
  cents jsonb;
  paid_at timestamptz := event.occurred_at;
  paid numeric;
  currency_code text := upper(obj ->> 'currency');
BEGIN
  IF event.event_type = 'invoice.paid' THEN
    kind := 'recurring';
    reference := obj ->> 'id';
    cents := obj -> 'amount_paid';
    IF jsonb_typeof(obj #> '{status_transitions,paid_at}') = 'number' THEN
      paid_at := to_timestamp((obj #>> '{status_transitions,paid_at}')::numeric);
    END IF;
    currency_code := coalesce(currency_code, (
      SELECT s.currency FROM user_subscriptions s
      WHERE s.stripe_subscription_id = coalesce(
        obj ->> 'subscription', obj #>> '{parent,subscription_details,subscription}')
      ORDER BY s.is_current DESC LIMIT 1));
  ELSIF event.event_type = 'payment_intent.succeeded' THEN
    kind := 'one_off';
    reference := obj ->> 'id';
    cents := obj -> 'amount_received';
  ELSIF event.event_type = 'checkout.session.completed' THEN
    IF coalesce(obj ->> 'mode', 'payment') <> 'payment'
       OR obj ->> 'payment_status' IS DISTINCT FROM 'paid' THEN
      RETURN;
    END IF;
    kind := 'one_off';
    reference := obj ->> 'payment_intent';
    cents := obj -> 'amount_total';
  ELSIF event.event_type = 'charge.refunded' THEN
    kind := 'refund';
    reference := event.event_id;
    cents := obj -> 'amount_refunded';
    currency_code := coalesce(currency_code, (
      SELECT p.currency FROM analytics_payments p
      WHERE p.kind IN ('one_off', 'recurring')
        AND p.reference IN (obj ->> 'payment_intent', obj ->> 'invoice') LIMIT 1));
  ELSE
    RETURN;
  END IF;
  IF jsonb_typeof(cents) <> 'number' OR reference IS NULL OR currency_code IS NULL THEN
    RETURN;  -- not a payment this can place; the handler judges the event itself
  END IF;
  paid := (cents #>> '{}')::numeric / 100;
  IF kind = 'refund' THEN
    -- amount_refunded is the charge's running total: the fact is what this event adds.
    SELECT paid - coalesce(sum(p.amount), 0) INTO paid
    FROM analytics_payments p WHERE p.kind = 'refund' AND p.charge = obj ->> 'id';
  END IF;
  IF paid <= 0 THEN
    RETURN;
  END IF;
  -- A one-off payment is reported twice (the session and the payment intent): one fact, dated
  -- by the earlier report.
  INSERT INTO analytics_payments AS p (kind, reference, amount, currency, occurred_at, charge,
                                       stripe_event_id)
  VALUES (kind, reference, paid, currency_code, paid_at,
          CASE WHEN kind = 'refund' THEN obj ->> 'id' END, event.event_id)
  ON CONFLICT ON CONSTRAINT pk_analytics_payments DO UPDATE SET
    occurred_at = excluded.occurred_at, stripe_event_id = excluded.stripe_event_id
  WHERE excluded.occurred_at < p.occurred_at;
END
$$
"""

RECORD_PAYMENT_OF_NEW_EVENT = """
CREATE FUNCTION analytics_record_stripe_payment_of_new_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM analytics_record_stripe_payment(NEW);
  RETURN NULL;
END
$$
"""

RECORD_PAYMENT_TRIGGER = """
CREATE TRIGGER webhook_events_record_stripe_payment AFTER INSERT ON webhook_events
FOR EACH ROW WHEN (NEW.provider = 'stripe' AND NEW.event_type IN ('invoice.paid',
  'payment_intent.succeeded', 'checkout.session.completed', 'charge.refunded'))
EXECUTE FUNCTION analytics_record_stripe_payment_of_new_event()
"""

FORGET_PAYMENT = """
CREATE FUNCTION analytics_forget_stripe_payment() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  DELETE FROM analytics_payments WHERE stripe_event_id = OLD.event_id;
  RETURN NULL;
END
$$
"""

FORGET_PAYMENT_TRIGGER = """
CREATE TRIGGER webhook_events_forget_stripe_payment AFTER DELETE ON webhook_events
FOR EACH ROW WHEN (OLD.provider = 'stripe')
EXECUTE FUNCTION analytics_forget_stripe_payment()
"""

MARK_REMOVED_DAYS = """
CREATE FUNCTION analytics_mark_removed_days() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO analytics_dirty_days (day)
  SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date FROM removed_events
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$
"""

# A trigger with transition tables has one event: an update marks the days it leaves (as a
# delete does) and the days it moves to (as an insert does, with the insert's function).
EVENT_CHANGE_TRIGGERS = (
    "CREATE TRIGGER events_mark_updated_days AFTER UPDATE ON events"
    " REFERENCING NEW TABLE AS inserted_events"
    " FOR EACH STATEMENT EXECUTE FUNCTION analytics_mark_dirty_days()",
    "CREATE TRIGGER events_mark_left_days AFTER UPDATE ON events"
    " REFERENCING OLD TABLE AS removed_events"
    " FOR EACH STATEMENT EXECUTE FUNCTION analytics_mark_removed_days()",
    "CREATE TRIGGER events_mark_deleted_days AFTER DELETE ON events"
    " REFERENCING OLD TABLE AS removed_events"
    " FOR EACH STATEMENT EXECUTE FUNCTION analytics_mark_removed_days()",
)

UNKNOWN_REFERENCES = """
CREATE FUNCTION analytics_unknown_references(users uuid[], products uuid[]) RETURNS TABLE (field text, id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT 'user_id', u FROM unnest(users) AS u
  WHERE NOT EXISTS (SELECT FROM user_profiles p WHERE p.id = u)
  UNION ALL
  SELECT 'product_id', x FROM unnest(products) AS x
  WHERE NOT EXISTS (SELECT FROM products p WHERE p.id = x)
$$
"""

SECURITY_UP = (
    "ALTER TABLE analytics_payments ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE analytics_payments FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON analytics_payments TO afilo_service",
    "CREATE POLICY analytics_payments_service_select ON analytics_payments AS PERMISSIVE"
    " FOR SELECT TO afilo_service\nUSING (true)",
)

# The facts of the Stripe events already stored, as the trigger would have written them.
BACKFILL = """
DO $$
DECLARE
  event record;
BEGIN
  FOR event IN SELECT * FROM webhook_events
               WHERE provider = 'stripe' AND event_type IN ('invoice.paid',
                 'payment_intent.succeeded', 'checkout.session.completed', 'charge.refunded')
               ORDER BY occurred_at, event_id LOOP
    PERFORM analytics_record_stripe_payment(event);
  END LOOP;
END
$$
"""


def upgrade() -> None:
    for table in DROPPED_ROLLUPS:
        op.drop_table(table)
    op.create_table(
        "analytics_payments",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("charge", sa.Text(), nullable=True),
        sa.Column("stripe_event_id", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('one_off', 'recurring', 'refund')",
            name=op.f("ck_analytics_payments_kind_valid"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_analytics_payments_amount_positive")),
        sa.PrimaryKeyConstraint("kind", "reference", name=op.f("pk_analytics_payments")),
    )
    op.create_index("ix_analytics_payments_occurred_at", "analytics_payments", ["occurred_at"])
    op.create_index(
        "ix_analytics_payments_stripe_event_id", "analytics_payments", ["stripe_event_id"]
    )
    op.execute(RECORD_PAYMENT)
    op.execute(RECORD_PAYMENT_OF_NEW_EVENT)
    op.execute(RECORD_PAYMENT_TRIGGER)
    op.execute(BACKFILL)
    op.execute(FORGET_PAYMENT)
    op.execute(FORGET_PAYMENT_TRIGGER)
    op.execute(MARK_REMOVED_DAYS)
    for statement in EVENT_CHANGE_TRIGGERS:
        op.execute(statement)
    op.execute(UNKNOWN_REFERENCES)
    for statement in SECURITY_UP:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION analytics_unknown_references(uuid[], uuid[])")
    for name in ("events_mark_updated_days", "events_mark_left_days", "events_mark_deleted_days"):
        op.execute(f"DROP TRIGGER {name} ON events")
    op.execute("DROP FUNCTION analytics_mark_removed_days()")
    op.execute("DROP TRIGGER webhook_events_forget_stripe_payment ON webhook_events")
    op.execute("DROP FUNCTION analytics_forget_stripe_payment()")
    op.execute("DROP TRIGGER webhook_events_record_stripe_payment ON webhook_events")
    op.execute("DROP FUNCTION analytics_record_stripe_payment_of_new_event()")
    op.execute("DROP FUNCTION analytics_record_stripe_payment(webhook_events)")
    op.drop_table("analytics_payments")
    op.create_table(
        "analytics_subscriptions_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tier", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        *(
            sa.Column(name, sa.Integer() if kind == "count" else sa.Numeric(), nullable=False)
            for name, kind in (
                ("started", "count"),
                ("new_mrr", "money"),
                ("upgrades", "count"),
                ("expansion_mrr", "money"),
                ("downgrades", "count"),
                ("contraction_mrr", "money"),
                ("canceled", "count"),
                ("churned_mrr", "money"),
            )
        ),
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
    for table in DROPPED_ROLLUPS:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"GRANT SELECT ON {table} TO afilo_service")
        op.execute(
            f"CREATE POLICY {table}_service_select ON {table} AS PERMISSIVE FOR SELECT "
            "TO afilo_service\nUSING (true)"
        )
