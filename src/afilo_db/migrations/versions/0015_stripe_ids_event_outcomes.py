"""Stripe ids as Stripe issues them; what became of each webhook event; refused deliveries counted.

- Stripe id CHECKs: the prefix, `_`, then letters, digits or underscores, at most 255 characters
  (Stripe's ids are opaque and may grow; a real Checkout Session id, `cs_test_a1YS...`, broke the
  old rule of 6 to 64 letters or digits); a subscription's price may also be a legacy Plan,
  whose id its creator chose (`gold21323`). Each is replaced without blocking writers for a scan
  (added NOT VALID, validated, the old one dropped, the new one renamed), as in 0008.
- `webhook_events.outcome` (applied, recorded, ignored, deferred, unresolved), `reason` (why it
  was ignored, deferred or is unresolved) and `attempts` (deliveries received: a deferred event
  is retried by its provider up to a bound, then parked as unresolved).
- `webhook_refusals`: deliveries refused before anything was stored, counted by provider, HTTP
  status and reason; the service role writes it, the application never sees it.

Revision ID: 0015_stripe_ids_event_outcomes
Revises: 0014_product_lists_without_nulls
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_stripe_ids_event_outcomes"
down_revision = "0014_product_lists_without_nulls"
branch_labels = None
depends_on = None


def _stripe_id(column: str, prefix: str) -> tuple[str, str]:
    """(new check, old check) of a Stripe id column."""
    shortest, longest = len(prefix) + 1 + 6, len(prefix) + 1 + 64
    return (
        f"{column} ~ '^{prefix}_[A-Za-z0-9_]+$' AND length({column}) <= 255",
        f"{column} ~ '^{prefix}_[A-Za-z0-9]+$' AND length({column}) BETWEEN {shortest} AND {longest}",
    )


# (table, constraint, new check, old check)
CHECKS = [
    ("products", "ck_products_stripe_product_id_format",
     *_stripe_id("stripe_product_id", "prod")),
    ("product_variants", "ck_product_variants_stripe_price_id_format",
     *_stripe_id("stripe_price_id", "price")),
    ("user_profiles", "ck_user_profiles_stripe_customer_id_format",
     *_stripe_id("stripe_customer_id", "cus")),
    # A subscription's price may be a legacy Plan with the id its creator chose (`gold21323`).
    ("user_subscriptions", "ck_user_subscriptions_stripe_price_id_format",
     "stripe_price_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$' AND length(stripe_price_id) <= 255",
     _stripe_id("stripe_price_id", "price")[1]),
    ("user_subscriptions", "ck_user_subscriptions_stripe_subscription_id_format",
     *_stripe_id("stripe_subscription_id", "sub")),
    ("purchases", "ck_purchases_stripe_checkout_session_id_format",
     *_stripe_id("stripe_checkout_session_id", "cs")),
    ("purchases", "ck_purchases_stripe_payment_intent_id_format",
     *_stripe_id("stripe_payment_intent_id", "pi")),
]  # fmt: skip

OUTCOMES = "outcome IN ('applied', 'recorded', 'ignored', 'deferred', 'unresolved')"

SECURITY_UP = (
    "ALTER TABLE webhook_refusals ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE webhook_refusals FORCE ROW LEVEL SECURITY",
    "GRANT SELECT, INSERT, UPDATE ON webhook_refusals TO afilo_service",
    "CREATE POLICY webhook_refusals_service_select ON webhook_refusals"
    " AS PERMISSIVE FOR SELECT TO afilo_service\nUSING (true)",
    "CREATE POLICY webhook_refusals_service_insert ON webhook_refusals"
    " AS PERMISSIVE FOR INSERT TO afilo_service\nWITH CHECK (true)",
    "CREATE POLICY webhook_refusals_service_update ON webhook_refusals"
    " AS PERMISSIVE FOR UPDATE TO afilo_service\nUSING (true)\nWITH CHECK (true)",
)


def _replace(table: str, name: str, check: str) -> None:
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}_next")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name}_next CHECK ({check}) NOT VALID")
    op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}_next")
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
    op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT {name}_next TO {name}")


def upgrade() -> None:
    op.add_column(
        "webhook_events",
        sa.Column("outcome", sa.Text(), server_default="applied", nullable=False),
    )
    op.add_column("webhook_events", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column(
        "webhook_events",
        sa.Column("attempts", sa.Integer(), server_default="1", nullable=False),
    )
    op.create_check_constraint(op.f("ck_webhook_events_outcome_valid"), "webhook_events", OUTCOMES)
    op.create_check_constraint(
        op.f("ck_webhook_events_attempts_positive"), "webhook_events", "attempts > 0"
    )
    op.create_index(
        "ix_webhook_events_waiting",
        "webhook_events",
        ["received_at"],
        postgresql_where=sa.text("outcome IN ('deferred', 'unresolved')"),
    )
    op.create_table(
        "webhook_refusals",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("deliveries", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "first_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "last_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "provider IN ('stripe', 'clerk')", name=op.f("ck_webhook_refusals_provider_valid")
        ),
        sa.CheckConstraint(
            "status BETWEEN 400 AND 599", name=op.f("ck_webhook_refusals_status_http_error")
        ),
        sa.CheckConstraint("deliveries > 0", name=op.f("ck_webhook_refusals_deliveries_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_refusals")),
        sa.UniqueConstraint(
            "provider", "status", "reason", name=op.f("uq_webhook_refusals_provider_status_reason")
        ),
    )
    for statement in SECURITY_UP:
        op.execute(statement)
    with op.get_context().autocommit_block():
        for table, name, new, _old in CHECKS:
            _replace(table, name, new)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for table, name, _new, old in CHECKS:
            _replace(table, name, old)
    op.drop_table("webhook_refusals")
    op.drop_index("ix_webhook_events_waiting", table_name="webhook_events")
    op.drop_constraint("ck_webhook_events_attempts_positive", "webhook_events")
    op.drop_constraint("ck_webhook_events_outcome_valid", "webhook_events")
    op.drop_column("webhook_events", "attempts")
    op.drop_column("webhook_events", "reason")
    op.drop_column("webhook_events", "outcome")
