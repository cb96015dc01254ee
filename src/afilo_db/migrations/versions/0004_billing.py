"""Billing and identity: the webhook event store, which event set each row's state, the
subscription history, the one entitlement rule, published products only for the application,
the service role's own login, and an audit trail users cannot forge.

- `webhook_events`: every Stripe and Clerk event once (unique provider event id), raw payload.
- `state_event_id` / `state_as_of` on user_profiles, user_subscriptions and purchases: the event
  that set the row's state and the provider's time of it; user_subscriptions keeps one row per
  state (`is_current` marks the newest: unique per Stripe subscription).
- `download_entitlements(user, product)`: the one rule (the downloads policy calls it), with the
  past_due grace period from the one-row `billing_settings`.
- The application role sees only published products (and their variants, tiers, memberships
  and knowledge).
- `afilo_service` logs in on its own; `afilo_app` is no longer its member (no SET ROLE to it).
- `user_activity_log.actor` defaults to the user context, and the application role's inserts are
  checked against it; the service role may only blank personal columns (erasure), nothing else.

A downgrade leaves the roles as they are (they belong to the whole server, like in 0002).

Frozen: the SQL was rendered from `afilo_db.security` when this revision was written.

Revision ID: 0004_billing
Revises: 0003_knowledge
Create Date: 2026-12-01 21:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_billing"
down_revision: str | None = "0003_knowledge"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES: tuple[str, ...] = (
    """
DO $roles$
BEGIN
  IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
    RAISE NOTICE 'role % may not create roles: afilo_app and afilo_service must exist already '
      '(`afilo-db db roles` prints the SQL to create them)', current_user;
    RETURN;
  END IF;
  -- LOGIN without a password: nobody can log in until `afilo-db up` or `db roles` sets one.
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'afilo_service') THEN
    CREATE ROLE afilo_service LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION NOINHERIT;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'afilo_app') THEN
    CREATE ROLE afilo_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION NOINHERIT;
  END IF;
  ALTER ROLE afilo_service LOGIN;
  -- Before 0004_billing the application role was a member, to switch for one transaction.
  IF EXISTS (SELECT FROM pg_auth_members
             WHERE roleid = 'afilo_service'::regrole AND member = 'afilo_app'::regrole) THEN
    REVOKE afilo_service FROM afilo_app CASCADE;
  END IF;
END
$roles$
""",
    """
DO $verify$
DECLARE
  missing text[] := ARRAY(
    SELECT name FROM unnest(ARRAY['afilo_app', 'afilo_service']) AS name
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name));
  unsafe text[];
BEGIN
  IF cardinality(missing) > 0 THEN
    RAISE EXCEPTION 'roles % do not exist and % may not create them', missing, current_user
      USING HINT = 'run `afilo-db db roles`, execute the SQL it prints as a role with CREATEROLE, '
                   'then migrate again';
  END IF;
  unsafe := ARRAY(
    SELECT rolname FROM pg_roles
    WHERE rolname IN ('afilo_app', 'afilo_service')
      AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication));
  IF cardinality(unsafe) > 0 THEN
    RAISE EXCEPTION 'roles % must be NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION',
      unsafe;
  END IF;
  IF pg_has_role('afilo_app', 'afilo_service', 'MEMBER') THEN
    RAISE EXCEPTION 'afilo_app is a member of afilo_service: it could switch to the service role';
  END IF;
  unsafe := ARRAY(
    SELECT name FROM unnest(ARRAY['afilo_app', 'afilo_service']) AS name
    WHERE pg_has_role(name, current_user, 'MEMBER'));
  IF cardinality(unsafe) > 0 THEN
    RAISE EXCEPTION 'roles % are members of the owner %', unsafe, current_user;
  END IF;
END
$verify$
""",
)

POLICIES_UP: tuple[str, ...] = (
    """
CREATE FUNCTION download_entitlements(user_id uuid, product_id uuid) RETURNS TABLE (reason text, subscription_id uuid, purchase_id uuid, valid_until timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
  SELECT format('%s subscription %s, tier %s', s.status, s.stripe_subscription_id, s.tier),
         s.id, NULL::uuid,
         s.current_period_end + CASE WHEN s.status = 'past_due' THEN b.past_due_grace
                                     ELSE interval '0' END
  FROM public.products p
  JOIN public.user_subscriptions s ON s.user_id = download_entitlements.user_id AND s.is_current
  -- No settings row (an owner deleted it) means no grace, not no entitlements.
  CROSS JOIN (SELECT coalesce((SELECT past_due_grace FROM public.billing_settings),
                              interval '0') AS past_due_grace) b
  WHERE p.id = download_entitlements.product_id AND p.status = 'active'
    AND array_position(ARRAY['free', 'starter', 'professional', 'enterprise'], s.tier)
        >= array_position(ARRAY['free', 'starter', 'professional', 'enterprise'], p.included_in_tier)
    AND (s.status IN ('trialing', 'active')
           AND s.current_period_end > now()
         OR s.status = 'past_due' AND s.current_period_end + b.past_due_grace > now())
  UNION ALL
  SELECT format('paid purchase %s', coalesce(pu.stripe_payment_intent_id, pu.id::text)),
         NULL::uuid, pu.id, NULL::timestamptz
  FROM public.products p
  JOIN public.purchases pu ON pu.product_id = p.id AND pu.user_id = download_entitlements.user_id
  WHERE p.id = download_entitlements.product_id AND p.status = 'active' AND pu.status = 'paid';
END
""",
    "DROP POLICY downloads_app_insert ON downloads",
    "DROP POLICY user_activity_log_app_insert ON user_activity_log",
    "DROP POLICY products_app_select ON products",
    "DROP POLICY product_variants_app_select ON product_variants",
    "DROP POLICY product_pricing_tiers_app_select ON product_pricing_tiers",
    "DROP POLICY product_collection_products_app_select ON product_collection_products",
    "DROP POLICY knowledge_base_app_select ON knowledge_base",
    "GRANT UPDATE (ip_address) ON downloads TO afilo_service",
    """
GRANT UPDATE (actor, details, ip_address, user_agent) ON user_activity_log TO afilo_service
""",
    "GRANT UPDATE (session_id, properties) ON events TO afilo_service",
    "ALTER TABLE webhook_events ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE webhook_events FORCE ROW LEVEL SECURITY",
    "GRANT SELECT, INSERT, UPDATE ON webhook_events TO afilo_service",
    "ALTER TABLE billing_settings ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE billing_settings FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON billing_settings TO afilo_app",
    "GRANT SELECT ON billing_settings TO afilo_service",
    """
CREATE POLICY downloads_app_insert ON downloads AS PERMISSIVE FOR INSERT TO afilo_app
WITH CHECK (user_id = (SELECT current_user_profile_id()) AND EXISTS (
  SELECT FROM download_entitlements(downloads.user_id, downloads.product_id) e
  WHERE e.subscription_id IS NOT DISTINCT FROM downloads.subscription_id
    AND e.purchase_id IS NOT DISTINCT FROM downloads.purchase_id))
""",
    """
CREATE POLICY downloads_service_update ON downloads AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (ip_address IS NOT DISTINCT FROM NULL)
""",
    """
CREATE POLICY user_activity_log_app_insert ON user_activity_log AS PERMISSIVE FOR INSERT TO afilo_app
WITH CHECK (user_id = (SELECT current_user_profile_id()) AND actor = (SELECT current_clerk_user_id()))
""",
    """
CREATE POLICY user_activity_log_service_update ON user_activity_log AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (actor IS NOT DISTINCT FROM 'erased' AND details IS NOT DISTINCT FROM '{}'::jsonb AND ip_address IS NOT DISTINCT FROM NULL AND user_agent IS NOT DISTINCT FROM NULL)
""",
    """
CREATE POLICY events_service_update ON events AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (session_id IS NOT DISTINCT FROM NULL AND properties IS NOT DISTINCT FROM '{}'::jsonb)
""",
    """
CREATE POLICY webhook_events_service_select ON webhook_events AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY webhook_events_service_insert ON webhook_events AS PERMISSIVE FOR INSERT TO afilo_service
WITH CHECK (true)
""",
    """
CREATE POLICY webhook_events_service_update ON webhook_events AS PERMISSIVE FOR UPDATE TO afilo_service
USING (true)
WITH CHECK (true)
""",
    """
CREATE POLICY billing_settings_app_select ON billing_settings AS PERMISSIVE FOR SELECT TO afilo_app
USING (true)
""",
    """
CREATE POLICY billing_settings_service_select ON billing_settings AS PERMISSIVE FOR SELECT TO afilo_service
USING (true)
""",
    """
CREATE POLICY products_app_select ON products AS PERMISSIVE FOR SELECT TO afilo_app
USING (status = 'active')
""",
    """
CREATE POLICY product_variants_app_select ON product_variants AS PERMISSIVE FOR SELECT TO afilo_app
USING (EXISTS (SELECT FROM products p WHERE p.id = product_variants.product_id AND p.status = 'active'))
""",
    """
CREATE POLICY product_pricing_tiers_app_select ON product_pricing_tiers AS PERMISSIVE FOR SELECT TO afilo_app
USING (EXISTS (SELECT FROM product_variants v JOIN products p ON p.id = v.product_id WHERE v.id = product_pricing_tiers.variant_id AND p.status = 'active'))
""",
    """
CREATE POLICY product_collection_products_app_select ON product_collection_products AS PERMISSIVE FOR SELECT TO afilo_app
USING (EXISTS (SELECT FROM products p WHERE p.id = product_collection_products.product_id AND p.status = 'active'))
""",
    """
CREATE POLICY knowledge_base_app_select ON knowledge_base AS PERMISSIVE FOR SELECT TO afilo_app
USING (is_published AND (knowledge_base.product_id IS NULL OR EXISTS (SELECT FROM products p WHERE p.id = knowledge_base.product_id AND p.status = 'active')))
""",
)

POLICIES_DOWN: tuple[str, ...] = (
    "DROP POLICY downloads_app_insert ON downloads",
    "DROP POLICY downloads_service_update ON downloads",
    "DROP POLICY user_activity_log_app_insert ON user_activity_log",
    "DROP POLICY user_activity_log_service_update ON user_activity_log",
    "DROP POLICY events_service_update ON events",
    "DROP POLICY webhook_events_service_select ON webhook_events",
    "DROP POLICY webhook_events_service_insert ON webhook_events",
    "DROP POLICY webhook_events_service_update ON webhook_events",
    "DROP POLICY billing_settings_app_select ON billing_settings",
    "DROP POLICY billing_settings_service_select ON billing_settings",
    "DROP POLICY products_app_select ON products",
    "DROP POLICY product_variants_app_select ON product_variants",
    "DROP POLICY product_pricing_tiers_app_select ON product_pricing_tiers",
    "DROP POLICY product_collection_products_app_select ON product_collection_products",
    "DROP POLICY knowledge_base_app_select ON knowledge_base",
    "REVOKE ALL ON webhook_events FROM afilo_app, afilo_service",
    "REVOKE ALL ON billing_settings FROM afilo_app, afilo_service",
    "REVOKE UPDATE (ip_address) ON downloads FROM afilo_service",
    """
REVOKE UPDATE (actor, details, ip_address, user_agent) ON user_activity_log FROM afilo_service
""",
    "REVOKE UPDATE (session_id, properties) ON events FROM afilo_service",
    """
CREATE POLICY downloads_app_insert ON downloads AS PERMISSIVE FOR INSERT TO afilo_app
WITH CHECK (user_id = (SELECT current_user_profile_id()) AND (
  EXISTS (
    SELECT FROM user_subscriptions s JOIN products p ON p.id = downloads.product_id
    WHERE s.id = downloads.subscription_id AND s.user_id = downloads.user_id
      AND s.status IN ('trialing', 'active')
      AND array_position(ARRAY['free', 'starter', 'professional', 'enterprise'], s.tier)
          >= array_position(ARRAY['free', 'starter', 'professional', 'enterprise'], p.included_in_tier))
  OR EXISTS (
    SELECT FROM purchases pu
    WHERE pu.id = downloads.purchase_id AND pu.user_id = downloads.user_id
      AND pu.product_id = downloads.product_id AND pu.status = 'paid')))
""",
    """
CREATE POLICY user_activity_log_app_insert ON user_activity_log AS PERMISSIVE FOR INSERT TO afilo_app
WITH CHECK (user_id = (SELECT current_user_profile_id()))
""",
    """
CREATE POLICY products_app_select ON products AS PERMISSIVE FOR SELECT TO afilo_app
USING (true)
""",
    """
CREATE POLICY product_variants_app_select ON product_variants AS PERMISSIVE FOR SELECT TO afilo_app
USING (true)
""",
    """
CREATE POLICY product_pricing_tiers_app_select ON product_pricing_tiers AS PERMISSIVE FOR SELECT TO afilo_app
USING (true)
""",
    """
CREATE POLICY product_collection_products_app_select ON product_collection_products AS PERMISSIVE FOR SELECT TO afilo_app
USING (true)
""",
    """
CREATE POLICY knowledge_base_app_select ON knowledge_base AS PERMISSIVE FOR SELECT TO afilo_app
USING (is_published)
""",
    "DROP FUNCTION download_entitlements(uuid, uuid)",
)


def upgrade() -> None:
    for statement in ROLES:
        op.execute(statement)
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "provider IN ('stripe', 'clerk')", name=op.f("ck_webhook_events_provider_valid")
        ),
        sa.CheckConstraint(
            "length(event_id) BETWEEN 1 AND 255", name=op.f("ck_webhook_events_event_id_length")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_profiles.id"],
            name=op.f("fk_webhook_events_user_id"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint(
            "provider", "event_id", name=op.f("uq_webhook_events_provider_event_id")
        ),
    )
    op.create_index("ix_webhook_events_user_id", "webhook_events", ["user_id"])
    op.create_index(
        "ix_webhook_events_subject_event_type", "webhook_events", ["subject", "event_type"]
    )
    op.create_table(
        "billing_settings",
        sa.Column("singleton", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "past_due_grace",
            sa.Interval(),
            server_default=sa.text("'3 days'::interval"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("singleton", name=op.f("ck_billing_settings_one_row")),
        sa.CheckConstraint(
            "past_due_grace >= interval '0' AND past_due_grace <= interval '90 days'",
            name=op.f("ck_billing_settings_past_due_grace_range"),
        ),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_billing_settings")),
    )
    op.execute("INSERT INTO billing_settings DEFAULT VALUES")
    for table in ("user_profiles", "user_subscriptions", "purchases"):
        op.add_column(table, sa.Column("state_event_id", sa.Text(), nullable=True))
        op.add_column(table, sa.Column("state_as_of", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(
        "uq_user_subscriptions_stripe_subscription_id", "user_subscriptions", type_="unique"
    )
    op.add_column(
        "user_subscriptions",
        sa.Column("is_current", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )
    op.create_unique_constraint(
        "uq_user_subscriptions_state_event_id", "user_subscriptions", ["state_event_id"]
    )
    op.create_index(
        "uq_user_subscriptions_current",
        "user_subscriptions",
        ["stripe_subscription_id"],
        unique=True,
        postgresql_where=sa.text("is_current"),
    )
    op.create_index(
        "ix_user_subscriptions_stripe_subscription_id_state_as_of",
        "user_subscriptions",
        ["stripe_subscription_id", "state_as_of"],
    )
    op.add_column("user_activity_log", sa.Column("event_id", sa.Text(), nullable=True))
    op.alter_column("user_activity_log", "actor", server_default=sa.text("current_clerk_user_id()"))
    for statement in POLICIES_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in POLICIES_DOWN:
        op.execute(statement)
    op.alter_column("user_activity_log", "actor", server_default=None)
    op.drop_column("user_activity_log", "event_id")
    op.drop_index(
        "ix_user_subscriptions_stripe_subscription_id_state_as_of", table_name="user_subscriptions"
    )
    op.drop_index("uq_user_subscriptions_current", table_name="user_subscriptions")
    op.drop_constraint("uq_user_subscriptions_state_event_id", "user_subscriptions", type_="unique")
    op.drop_column("user_subscriptions", "is_current")
    op.create_unique_constraint(
        "uq_user_subscriptions_stripe_subscription_id",
        "user_subscriptions",
        ["stripe_subscription_id"],
    )
    for table in ("purchases", "user_subscriptions", "user_profiles"):
        op.drop_column(table, "state_as_of")
        op.drop_column(table, "state_event_id")
    op.drop_table("billing_settings")
    op.drop_index("ix_webhook_events_subject_event_type", table_name="webhook_events")
    op.drop_index("ix_webhook_events_user_id", table_name="webhook_events")
    op.drop_table("webhook_events")
