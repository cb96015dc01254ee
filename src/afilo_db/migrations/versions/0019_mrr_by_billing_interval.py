"""MRR normalised by the price's billing interval, as ChartMogul does: a yearly price is a
twelfth a month, a quarterly one a third.

- `user_subscriptions.interval_months`: how many months the state's price bills for (a year 12,
  three months 3, a week 12/52, a day 12/365), default 1 (a monthly price, and rows written
  without a Stripe event, as the seed writes them).
- `subscription_interval_months(subscription, price_id)`: read from the subscription object
  Stripe sent, on the item whose price (or legacy plan) is the one recorded: `recurring.interval`
  and `recurring.interval_count` on a price, `interval` and `interval_count` on a plan.
- A BEFORE INSERT trigger sets it on each new state from its stored Stripe event (stored before
  the handler writes the state, in the same transaction), so the handlers change nothing;
  the states already recorded are filled from their events.

Frozen: SQL written here, nothing imported from afilo_db.

Revision ID: 0019_mrr_by_billing_interval
Revises: 0017_buyer_text_and_scoped_reads
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_mrr_by_billing_interval"
down_revision = "0017_buyer_text_and_scoped_reads"
branch_labels = None
depends_on = None

INTERVAL_MONTHS = """
CREATE FUNCTION subscription_interval_months(subscription jsonb, price_id text) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce((
    SELECT CASE coalesce(r ->> 'interval', '')
             WHEN 'month' THEN 1 WHEN 'year' THEN 12
             WHEN 'week' THEN 12 / 52.0 WHEN 'day' THEN 12 / 365.0 END
           * CASE WHEN jsonb_typeof(r -> 'interval_count') = 'number'
                       AND (r ->> 'interval_count')::numeric > 0
                  THEN (r ->> 'interval_count')::numeric ELSE 1 END
    FROM jsonb_array_elements(CASE
           WHEN jsonb_typeof(subscription #> '{items,data}') = 'array'
           THEN subscription #> '{items,data}'
           ELSE jsonb_build_array(jsonb_build_object('plan', subscription -> 'plan')) END) AS item,
         LATERAL (SELECT CASE WHEN jsonb_typeof(item #> '{price,recurring}') = 'object'
                              THEN item #> '{price,recurring}' ELSE item -> 'plan' END) AS p(r)
    WHERE coalesce(item #>> '{price,id}', item #>> '{plan,id}') = price_id
      AND jsonb_typeof(r) = 'object'
    LIMIT 1), 1)
$$
"""

SET_INTERVAL_MONTHS = """
CREATE FUNCTION user_subscriptions_set_interval_months() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  SELECT subscription_interval_months(e.payload::jsonb #> '{data,object}', NEW.stripe_price_id)
  INTO NEW.interval_months
  FROM webhook_events e WHERE e.provider = 'stripe' AND e.event_id = NEW.state_event_id;
  NEW.interval_months := coalesce(NEW.interval_months, 1);
  RETURN NEW;
END
$$
"""

SET_INTERVAL_MONTHS_TRIGGER = """
CREATE TRIGGER user_subscriptions_set_interval_months BEFORE INSERT ON user_subscriptions
FOR EACH ROW WHEN (NEW.state_event_id IS NOT NULL)
EXECUTE FUNCTION user_subscriptions_set_interval_months()
"""

BACKFILL = """
UPDATE user_subscriptions s
SET interval_months = subscription_interval_months(e.payload::jsonb #> '{data,object}',
                                                   s.stripe_price_id)
FROM webhook_events e
WHERE e.provider = 'stripe' AND e.event_id = s.state_event_id AND e.payload IS NOT NULL
  AND subscription_interval_months(e.payload::jsonb #> '{data,object}', s.stripe_price_id) <> 1
"""


def upgrade() -> None:
    op.add_column(
        "user_subscriptions",
        sa.Column("interval_months", sa.Numeric(), server_default="1", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_user_subscriptions_interval_months_positive"),
        "user_subscriptions",
        "interval_months > 0",
    )
    op.execute(INTERVAL_MONTHS)
    op.execute(SET_INTERVAL_MONTHS)
    op.execute(SET_INTERVAL_MONTHS_TRIGGER)
    op.execute(BACKFILL)


def downgrade() -> None:
    op.execute("DROP TRIGGER user_subscriptions_set_interval_months ON user_subscriptions")
    op.execute("DROP FUNCTION user_subscriptions_set_interval_months()")
    op.execute("DROP FUNCTION subscription_interval_months(jsonb, text)")
    op.drop_constraint(
        op.f("ck_user_subscriptions_interval_months_positive"), "user_subscriptions", "check"
    )
    op.drop_column("user_subscriptions", "interval_months")
