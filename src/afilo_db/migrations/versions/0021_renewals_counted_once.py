"""A subscription's payment counted once in revenue: the payment intent of an invoice is no
one-off payment.

Stripe sends `payment_intent.succeeded` for every payment, a subscription invoice's too, beside
that invoice's `invoice.paid`. The analytics trigger recorded every payment intent as a one-off
payment, so each renewal paid through a payment intent that names its invoice (every API
version before 2025-03-31) counted twice in `revenue`: once as recurring, once as one-off.

- `analytics_record_stripe_payment`: a payment intent that names an invoice records nothing (the
  invoice's `invoice.paid` is the fact).
- The one-off facts already recorded from such payment intents are removed.

Not covered: from 2025-03-31 a payment intent no longer names its invoice (the link is the
InvoicePayment); such a payment intent is still counted as one-off.

Frozen: SQL written here, nothing imported from afilo_db.

Revision ID: 0021_renewals_counted_once
Revises: 0020_knowledge_term_counts
"""

from __future__ import annotations

from alembic import op

revision = "0021_renewals_counted_once"
down_revision = "0020_knowledge_term_counts"
branch_labels = None
depends_on = None

# Revision 0016's function, as it was.
PREVIOUS_RECORD_PAYMENT = """
CREATE OR REPLACE FUNCTION analytics_record_stripe_payment(event webhook_events) RETURNS void
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

# The same with one change: a payment intent that names an invoice records nothing.
PAYMENT_INTENT_BRANCH = """
  ELSIF event.event_type = 'payment_intent.succeeded' THEN
    kind := 'one_off';
"""
INVOICE_PAYMENT_INTENT_SKIPPED = """
  ELSIF event.event_type = 'payment_intent.succeeded' THEN
    IF obj ->> 'invoice' IS NOT NULL THEN
      RETURN;  -- an invoice's payment: its invoice.paid is the fact
    END IF;
    kind := 'one_off';
"""
RECORD_PAYMENT = PREVIOUS_RECORD_PAYMENT.replace(
    PAYMENT_INTENT_BRANCH, INVOICE_PAYMENT_INTENT_SKIPPED
)
assert RECORD_PAYMENT != PREVIOUS_RECORD_PAYMENT

FORGET_INVOICE_PAYMENT_INTENTS = """
DELETE FROM analytics_payments p
USING webhook_events w
WHERE p.kind = 'one_off'
  AND p.stripe_event_id = w.event_id
  AND w.provider = 'stripe'
  AND w.event_type = 'payment_intent.succeeded'
  AND w.payload::jsonb #>> '{data,object,invoice}' IS NOT NULL
"""

RECORD_INVOICE_PAYMENT_INTENTS = """
DO $$
DECLARE
  event record;
BEGIN
  FOR event IN SELECT * FROM webhook_events
               WHERE provider = 'stripe' AND event_type = 'payment_intent.succeeded'
                 AND payload::jsonb #>> '{data,object,invoice}' IS NOT NULL
               ORDER BY occurred_at, event_id LOOP
    PERFORM analytics_record_stripe_payment(event);
  END LOOP;
END
$$
"""


def upgrade() -> None:
    op.execute(RECORD_PAYMENT)
    op.execute(FORGET_INVOICE_PAYMENT_INTENTS)


def downgrade() -> None:
    op.execute(PREVIOUS_RECORD_PAYMENT)
    op.execute(RECORD_INVOICE_PAYMENT_INTENTS)
