"""Baseline: extensions, helper functions and every table of the four domains.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-25 12:05:29.515983

"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Portable time-ordered UUIDs (RFC 9562 version 7): PostgreSQL 18 has uuidv7(), older servers
# (Neon still offers 15-17) do not. 48 bits of Unix milliseconds, then random bits.
UUID_GENERATE_V7 = """
CREATE FUNCTION uuid_generate_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid
$$
"""

# Gaps between volume tiers are checked at commit, so a transaction may rewrite a variant's tiers
# in any order; overlaps are refused at once by the EXCLUDE constraint.
PRICING_TIERS_CONTIGUOUS = """
CREATE FUNCTION check_pricing_tiers_contiguous() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  variant uuid;
  expected integer;
  tier record;
BEGIN
  FOREACH variant IN ARRAY ARRAY[
    CASE WHEN TG_OP <> 'DELETE' THEN NEW.variant_id END,
    CASE WHEN TG_OP <> 'INSERT' THEN OLD.variant_id END
  ] LOOP
    CONTINUE WHEN variant IS NULL;
    expected := 1;
    -- No tier can follow an unbounded one: the EXCLUDE constraint refuses the overlap.
    FOR tier IN
      SELECT min_quantity, max_quantity FROM product_pricing_tiers
      WHERE variant_id = variant ORDER BY min_quantity
    LOOP
      IF tier.min_quantity <> expected THEN
        RAISE EXCEPTION USING
          ERRCODE = 'check_violation',
          CONSTRAINT = 'ck_product_pricing_tiers_contiguous',
          TABLE = 'product_pricing_tiers',
          MESSAGE = format(
            'volume tiers of variant %s must cover quantities from 1 without gaps: '
            'expected a tier starting at %s, found one starting at %s',
            variant, expected, tier.min_quantity);
      END IF;
      expected := tier.max_quantity + 1;
    END LOOP;
  END LOOP;
  RETURN NULL;
END
$$
"""

PRICING_TIERS_CONTIGUOUS_TRIGGER = """
CREATE CONSTRAINT TRIGGER ck_product_pricing_tiers_contiguous
AFTER INSERT OR UPDATE OR DELETE ON product_pricing_tiers
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION check_pricing_tiers_contiguous()
"""

# Monthly partitions of events, bounded in UTC whatever the session's time zone.
ENSURE_EVENT_PARTITIONS = """
CREATE FUNCTION ensure_event_partitions(first_month date, months integer) RETURNS integer
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


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute(UUID_GENERATE_V7)
    op.create_table(
        "events",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("session_id", sa.Text(), nullable=True),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.CheckConstraint(
            "event_type ~ '^[a-z][a-z0-9_.]{1,63}$'", name=op.f("ck_events_event_type_format")
        ),
        sa.PrimaryKeyConstraint("id", "occurred_at", name=op.f("pk_events")),
        postgresql_partition_by="RANGE (occurred_at)",
    )
    op.create_index(
        "ix_events_event_type_occurred_at", "events", ["event_type", "occurred_at"], unique=False
    )
    op.create_index(
        "ix_events_product_id_occurred_at", "events", ["product_id", "occurred_at"], unique=False
    )
    op.create_index(
        "ix_events_user_id_occurred_at", "events", ["user_id", "occurred_at"], unique=False
    )
    op.create_table(
        "product_collections",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("handle", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "handle ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(handle) <= 100",
            name=op.f("ck_product_collections_handle_format"),
        ),
        sa.CheckConstraint(
            "length(btrim(title)) BETWEEN 1 AND 200",
            name=op.f("ck_product_collections_title_length"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_collections")),
        sa.UniqueConstraint("handle", name=op.f("uq_product_collections_handle")),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("handle", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.TEXT()), server_default="{}", nullable=False),
        sa.Column("tech_stack", postgresql.ARRAY(sa.TEXT()), server_default="{}", nullable=False),
        sa.Column("status", sa.Text(), server_default="draft", nullable=False),
        sa.Column("stripe_product_id", sa.Text(), nullable=True),
        sa.Column("included_in_tier", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "handle ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(handle) <= 100",
            name=op.f("ck_products_handle_format"),
        ),
        sa.CheckConstraint(
            "included_in_tier IN ('free', 'starter', 'professional', 'enterprise')",
            name=op.f("ck_products_tier_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'active', 'archived')", name=op.f("ck_products_status_valid")
        ),
        sa.CheckConstraint(
            "stripe_product_id ~ '^prod_[A-Za-z0-9]{6,64}$'",
            name=op.f("ck_products_stripe_product_id_format"),
        ),
        sa.CheckConstraint(
            "length(btrim(title)) BETWEEN 1 AND 200", name=op.f("ck_products_title_length")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("handle", name=op.f("uq_products_handle")),
        sa.UniqueConstraint("stripe_product_id", name=op.f("uq_products_stripe_product_id")),
    )
    op.create_index(
        "ix_products_status_created_at", "products", ["status", "created_at"], unique=False
    )
    op.create_index("ix_products_tags", "products", ["tags"], unique=False, postgresql_using="gin")
    op.create_index(
        "ix_products_tech_stack", "products", ["tech_stack"], unique=False, postgresql_using="gin"
    )
    op.create_table(
        "user_profiles",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("clerk_user_id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("subscription_tier", sa.Text(), server_default="free", nullable=False),
        sa.Column("stripe_customer_id", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "clerk_user_id ~ '^user_[A-Za-z0-9]{6,64}$'",
            name=op.f("ck_user_profiles_clerk_user_id_format"),
        ),
        sa.CheckConstraint(
            "email ~ '^[a-z0-9!#$%&''*+/=?^_`{|}~-]+(\\.[a-z0-9!#$%&''*+/=?^_`{|}~-]+)*@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$' AND length(email) <= 254",
            name=op.f("ck_user_profiles_email_format"),
        ),
        sa.CheckConstraint(
            "stripe_customer_id ~ '^cus_[A-Za-z0-9]{6,64}$'",
            name=op.f("ck_user_profiles_stripe_customer_id_format"),
        ),
        sa.CheckConstraint(
            "subscription_tier IN ('free', 'starter', 'professional', 'enterprise')",
            name=op.f("ck_user_profiles_tier_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_profiles")),
        sa.UniqueConstraint("clerk_user_id", name=op.f("uq_user_profiles_clerk_user_id")),
        sa.UniqueConstraint("stripe_customer_id", name=op.f("uq_user_profiles_stripe_customer_id")),
    )
    op.create_index(
        "ix_user_profiles_subscription_tier", "user_profiles", ["subscription_tier"], unique=False
    )
    op.create_index(
        "uq_user_profiles_email", "user_profiles", [sa.literal_column("lower(email)")], unique=True
    )
    op.create_table(
        "chat_conversations",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="open", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('open', 'resolved', 'archived')",
            name=op.f("ck_chat_conversations_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_profiles.id"],
            name=op.f("fk_chat_conversations_user_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_conversations")),
    )
    op.create_index(
        "ix_chat_conversations_user_id_updated_at",
        "chat_conversations",
        ["user_id", "updated_at"],
        unique=False,
    )
    op.create_table(
        "knowledge_base",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=True),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("is_published", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "searchable_text",
            postgresql.TSVECTOR(),
            sa.Computed(
                "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || setweight(to_tsvector('english'::regconfig, coalesce(content, '')), 'B')",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(dim=384), nullable=True),
        sa.Column("embedding_model", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "content_type IN ('faq', 'guide', 'policy', 'product', 'troubleshooting')",
            name=op.f("ck_knowledge_base_content_type_valid"),
        ),
        sa.CheckConstraint(
            "(embedding IS NULL) = (embedding_model IS NULL)",
            name=op.f("ck_knowledge_base_embedding_has_model"),
        ),
        sa.CheckConstraint(
            "length(btrim(title)) BETWEEN 1 AND 300", name=op.f("ck_knowledge_base_title_length")
        ),
        sa.CheckConstraint(
            "length(content) >= 1", name=op.f("ck_knowledge_base_content_not_empty")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_knowledge_base_product_id"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_base")),
    )
    op.create_index(
        "ix_knowledge_base_content_type", "knowledge_base", ["content_type"], unique=False
    )
    op.create_index(
        "ix_knowledge_base_embedding",
        "knowledge_base",
        ["embedding"],
        unique=False,
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.create_index("ix_knowledge_base_product_id", "knowledge_base", ["product_id"], unique=False)
    op.create_index(
        "ix_knowledge_base_searchable_text",
        "knowledge_base",
        ["searchable_text"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_table(
        "product_collection_products",
        sa.Column("collection_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "position >= 0", name=op.f("ck_product_collection_products_position_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["product_collections.id"],
            name=op.f("fk_product_collection_products_collection_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_collection_products_product_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "collection_id", "product_id", name=op.f("pk_product_collection_products")
        ),
        sa.UniqueConstraint(
            "collection_id",
            "position",
            deferrable=True,
            initially="DEFERRED",
            name=op.f("uq_product_collection_products_collection_id_position"),
        ),
    )
    op.create_index(
        "ix_product_collection_products_product_id",
        "product_collection_products",
        ["product_id"],
        unique=False,
    )
    op.create_table(
        "product_variants",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("license_type", sa.Text(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("currency", sa.Text(), server_default="USD", nullable=False),
        sa.Column("stripe_price_id", sa.Text(), nullable=True),
        sa.Column("available_for_sale", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("seats", sa.Integer(), nullable=True),
        sa.Column("duration_days", sa.Integer(), nullable=True),
        sa.Column("redistribution", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(license_type = 'personal' AND seats IS NOT NULL AND seats BETWEEN 1 AND 1 AND NOT redistribution) OR (license_type = 'team' AND seats IS NOT NULL AND seats BETWEEN 2 AND 25 AND NOT redistribution) OR (license_type = 'business' AND seats IS NOT NULL AND seats BETWEEN 1 AND 1000 AND NOT redistribution) OR (license_type = 'enterprise' AND seats IS NULL)",
            name=op.f("ck_product_variants_seats_match_license"),
        ),
        sa.CheckConstraint(
            "currency IN ('AUD', 'CAD', 'CHF', 'DKK', 'EUR', 'GBP', 'NOK', 'NZD', 'SEK', 'SGD', 'USD')",
            name=op.f("ck_product_variants_currency_valid"),
        ),
        sa.CheckConstraint(
            "license_type IN ('personal', 'team', 'business', 'enterprise')",
            name=op.f("ck_product_variants_license_type_valid"),
        ),
        sa.CheckConstraint(
            "sku ~ '^[A-Z0-9]+(-[A-Z0-9]+)*$' AND length(sku) <= 64",
            name=op.f("ck_product_variants_sku_format"),
        ),
        sa.CheckConstraint(
            "stripe_price_id ~ '^price_[A-Za-z0-9]{6,64}$'",
            name=op.f("ck_product_variants_stripe_price_id_format"),
        ),
        sa.CheckConstraint(
            "duration_days IS NULL OR duration_days BETWEEN 1 AND 3650",
            name=op.f("ck_product_variants_duration_days_range"),
        ),
        sa.CheckConstraint(
            "price > 0 AND price <= 1000000.00", name=op.f("ck_product_variants_price_range")
        ),
        sa.CheckConstraint("scale(price) <= 2", name=op.f("ck_product_variants_price_scale")),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_variants_product_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_variants")),
        sa.UniqueConstraint("id", "license_type", name=op.f("uq_product_variants_id_license_type")),
        sa.UniqueConstraint("sku", name=op.f("uq_product_variants_sku")),
        sa.UniqueConstraint("stripe_price_id", name=op.f("uq_product_variants_stripe_price_id")),
    )
    op.create_index(
        "ix_product_variants_license_type", "product_variants", ["license_type"], unique=False
    )
    op.create_index(
        "ix_product_variants_product_id_price",
        "product_variants",
        ["product_id", "price"],
        unique=False,
    )
    op.create_table(
        "user_activity_log",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("entity_type", sa.Text(), nullable=True),
        sa.Column("entity_id", sa.Text(), nullable=True),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("ip_address", postgresql.INET(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "length(btrim(action)) BETWEEN 1 AND 100",
            name=op.f("ck_user_activity_log_action_length"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_profiles.id"],
            name=op.f("fk_user_activity_log_user_id"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_activity_log")),
    )
    op.create_index(
        "ix_user_activity_log_entity",
        "user_activity_log",
        ["entity_type", "entity_id"],
        unique=False,
    )
    op.create_index(
        "ix_user_activity_log_user_id_created_at",
        "user_activity_log",
        ["user_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "user_subscriptions",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("stripe_subscription_id", sa.Text(), nullable=False),
        sa.Column("stripe_price_id", sa.Text(), nullable=False),
        sa.Column("tier", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("currency", sa.Text(), server_default="USD", nullable=False),
        sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "currency IN ('AUD', 'CAD', 'CHF', 'DKK', 'EUR', 'GBP', 'NOK', 'NZD', 'SEK', 'SGD', 'USD')",
            name=op.f("ck_user_subscriptions_currency_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused')",
            name=op.f("ck_user_subscriptions_status_valid"),
        ),
        sa.CheckConstraint(
            "stripe_price_id ~ '^price_[A-Za-z0-9]{6,64}$'",
            name=op.f("ck_user_subscriptions_stripe_price_id_format"),
        ),
        sa.CheckConstraint(
            "stripe_subscription_id ~ '^sub_[A-Za-z0-9]{6,64}$'",
            name=op.f("ck_user_subscriptions_stripe_subscription_id_format"),
        ),
        sa.CheckConstraint(
            "tier IN ('free', 'starter', 'professional', 'enterprise')",
            name=op.f("ck_user_subscriptions_tier_valid"),
        ),
        sa.CheckConstraint(
            "amount >= 0 AND amount <= 1000000.00 AND scale(amount) <= 2",
            name=op.f("ck_user_subscriptions_amount_valid"),
        ),
        sa.CheckConstraint(
            "current_period_end > current_period_start",
            name=op.f("ck_user_subscriptions_period_order"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_profiles.id"],
            name=op.f("fk_user_subscriptions_user_id"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_subscriptions")),
        sa.UniqueConstraint(
            "stripe_subscription_id", name=op.f("uq_user_subscriptions_stripe_subscription_id")
        ),
    )
    op.create_index(
        "ix_user_subscriptions_user_id_status",
        "user_subscriptions",
        ["user_id", "status"],
        unique=False,
    )
    op.create_table(
        "bot_analytics",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("messages", sa.Integer(), server_default="0", nullable=False),
        sa.Column("answered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("resolved", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("avg_latency_ms", sa.Integer(), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "avg_latency_ms IS NULL OR avg_latency_ms >= 0",
            name=op.f("ck_bot_analytics_latency_positive"),
        ),
        sa.CheckConstraint(
            "messages >= 0 AND answered >= 0 AND answered <= messages",
            name=op.f("ck_bot_analytics_counts"),
        ),
        sa.CheckConstraint(
            "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5",
            name=op.f("ck_bot_analytics_satisfaction_range"),
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_bot_analytics_conversation_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_analytics")),
    )
    op.create_index("ix_bot_analytics_day", "bot_analytics", ["day"], unique=False)
    op.create_index(
        "uq_bot_analytics_conversation_id_day",
        "bot_analytics",
        ["conversation_id", "day"],
        unique=True,
    )
    op.create_table(
        "cart_items",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("variant_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "quantity > 0 AND quantity <= 1000", name=op.f("ck_cart_items_quantity_range")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_profiles.id"],
            name=op.f("fk_cart_items_user_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["product_variants.id"],
            name=op.f("fk_cart_items_variant_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cart_items")),
    )
    op.create_index("ix_cart_items_variant_id", "cart_items", ["variant_id"], unique=False)
    op.create_index(
        "uq_cart_items_user_id_variant_id", "cart_items", ["user_id", "variant_id"], unique=True
    )
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('user', 'assistant', 'system')", name=op.f("ck_chat_messages_role_valid")
        ),
        sa.CheckConstraint(
            "length(content) BETWEEN 1 AND 32000", name=op.f("ck_chat_messages_content_length")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_messages_conversation_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    op.create_index(
        "ix_chat_messages_conversation_id_created_at",
        "chat_messages",
        ["conversation_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "product_pricing_tiers",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("variant_id", sa.Uuid(), nullable=False),
        sa.Column("license_type", sa.Text(), nullable=False),
        sa.Column("min_quantity", sa.Integer(), nullable=False),
        sa.Column("max_quantity", sa.Integer(), nullable=True),
        sa.Column("unit_price", sa.Numeric(), nullable=False),
        sa.Column(
            "quantity_range",
            postgresql.INT4RANGE(),
            sa.Computed(
                "CASE WHEN max_quantity IS NULL OR max_quantity >= min_quantity THEN int4range(min_quantity, max_quantity, '[]') END",
                persisted=True,
            ),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        postgresql.ExcludeConstraint(
            (sa.column("variant_id"), "="),
            (sa.column("quantity_range"), "&&"),
            using="gist",
            name="ex_product_pricing_tiers_no_overlap",
        ),
        sa.CheckConstraint(
            "license_type IN ('team', 'business')",
            name=op.f("ck_product_pricing_tiers_license_type_tiered"),
        ),
        sa.CheckConstraint(
            "max_quantity IS NULL OR max_quantity >= min_quantity",
            name=op.f("ck_product_pricing_tiers_max_quantity_order"),
        ),
        sa.CheckConstraint(
            "min_quantity >= 1", name=op.f("ck_product_pricing_tiers_min_quantity_positive")
        ),
        sa.CheckConstraint(
            "scale(unit_price) <= 2", name=op.f("ck_product_pricing_tiers_unit_price_scale")
        ),
        sa.CheckConstraint(
            "unit_price > 0 AND unit_price <= 1000000.00",
            name=op.f("ck_product_pricing_tiers_unit_price_range"),
        ),
        sa.ForeignKeyConstraint(
            ["variant_id", "license_type"],
            ["product_variants.id", "product_variants.license_type"],
            name="fk_product_pricing_tiers_variant_id_license_type",
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_pricing_tiers")),
    )
    op.create_table(
        "purchases",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("variant_id", sa.Uuid(), nullable=True),
        sa.Column("quantity", sa.Integer(), server_default="1", nullable=False),
        sa.Column("amount", sa.Numeric(), nullable=False),
        sa.Column("currency", sa.Text(), server_default="USD", nullable=False),
        sa.Column("status", sa.Text(), server_default="paid", nullable=False),
        sa.Column("stripe_payment_intent_id", sa.Text(), nullable=True),
        sa.Column("stripe_checkout_session_id", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "currency IN ('AUD', 'CAD', 'CHF', 'DKK', 'EUR', 'GBP', 'NOK', 'NZD', 'SEK', 'SGD', 'USD')",
            name=op.f("ck_purchases_currency_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'paid', 'refunded')", name=op.f("ck_purchases_status_valid")
        ),
        sa.CheckConstraint(
            "stripe_checkout_session_id ~ '^cs_[A-Za-z0-9]{6,64}$'",
            name=op.f("ck_purchases_stripe_checkout_session_id_format"),
        ),
        sa.CheckConstraint(
            "stripe_payment_intent_id ~ '^pi_[A-Za-z0-9]{6,64}$'",
            name=op.f("ck_purchases_stripe_payment_intent_id_format"),
        ),
        sa.CheckConstraint(
            "amount >= 0 AND amount <= 1000000.00 AND scale(amount) <= 2",
            name=op.f("ck_purchases_amount_valid"),
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_purchases_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_purchases_product_id"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_profiles.id"],
            name=op.f("fk_purchases_user_id"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["product_variants.id"],
            name=op.f("fk_purchases_variant_id"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
        sa.UniqueConstraint(
            "stripe_payment_intent_id", name=op.f("uq_purchases_stripe_payment_intent_id")
        ),
    )
    op.create_index("ix_purchases_product_id", "purchases", ["product_id"], unique=False)
    op.create_index(
        "ix_purchases_user_id_product_id", "purchases", ["user_id", "product_id"], unique=False
    )
    op.create_table(
        "downloads",
        sa.Column("id", sa.Uuid(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("subscription_id", sa.Uuid(), nullable=True),
        sa.Column("purchase_id", sa.Uuid(), nullable=True),
        sa.Column("ip_address", postgresql.INET(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "num_nonnulls(subscription_id, purchase_id) = 1",
            name=op.f("ck_downloads_one_entitlement"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_downloads_product_id"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_downloads_purchase_id"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["user_subscriptions.id"],
            name=op.f("fk_downloads_subscription_id"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_profiles.id"], name=op.f("fk_downloads_user_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_downloads")),
    )
    op.create_index("ix_downloads_product_id", "downloads", ["product_id"], unique=False)
    op.create_index("ix_downloads_purchase_id", "downloads", ["purchase_id"], unique=False)
    op.create_index("ix_downloads_subscription_id", "downloads", ["subscription_id"], unique=False)
    op.create_index(
        "ix_downloads_user_id_created_at", "downloads", ["user_id", "created_at"], unique=False
    )
    op.execute(PRICING_TIERS_CONTIGUOUS)
    op.execute(PRICING_TIERS_CONTIGUOUS_TRIGGER)
    op.execute(ENSURE_EVENT_PARTITIONS)
    op.execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
    op.execute(
        "SELECT ensure_event_partitions((date_trunc('month', now()) - interval '12 months')::date, 25)"
    )


def downgrade() -> None:
    op.drop_index("ix_downloads_user_id_created_at", table_name="downloads")
    op.drop_index("ix_downloads_subscription_id", table_name="downloads")
    op.drop_index("ix_downloads_purchase_id", table_name="downloads")
    op.drop_index("ix_downloads_product_id", table_name="downloads")
    op.drop_table("downloads")
    op.drop_index("ix_purchases_user_id_product_id", table_name="purchases")
    op.drop_index("ix_purchases_product_id", table_name="purchases")
    op.drop_table("purchases")
    op.drop_table("product_pricing_tiers")
    op.drop_index("ix_chat_messages_conversation_id_created_at", table_name="chat_messages")
    op.drop_table("chat_messages")
    op.drop_index("uq_cart_items_user_id_variant_id", table_name="cart_items")
    op.drop_index("ix_cart_items_variant_id", table_name="cart_items")
    op.drop_table("cart_items")
    op.drop_index("uq_bot_analytics_conversation_id_day", table_name="bot_analytics")
    op.drop_index("ix_bot_analytics_day", table_name="bot_analytics")
    op.drop_table("bot_analytics")
    op.drop_index("ix_user_subscriptions_user_id_status", table_name="user_subscriptions")
    op.drop_table("user_subscriptions")
    op.drop_index("ix_user_activity_log_user_id_created_at", table_name="user_activity_log")
    op.drop_index("ix_user_activity_log_entity", table_name="user_activity_log")
    op.drop_table("user_activity_log")
    op.drop_index("ix_product_variants_product_id_price", table_name="product_variants")
    op.drop_index("ix_product_variants_license_type", table_name="product_variants")
    op.drop_table("product_variants")
    op.drop_index(
        "ix_product_collection_products_product_id", table_name="product_collection_products"
    )
    op.drop_table("product_collection_products")
    op.drop_index(
        "ix_knowledge_base_searchable_text", table_name="knowledge_base", postgresql_using="gin"
    )
    op.drop_index("ix_knowledge_base_product_id", table_name="knowledge_base")
    op.drop_index(
        "ix_knowledge_base_embedding",
        table_name="knowledge_base",
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.drop_index("ix_knowledge_base_content_type", table_name="knowledge_base")
    op.drop_table("knowledge_base")
    op.drop_index("ix_chat_conversations_user_id_updated_at", table_name="chat_conversations")
    op.drop_table("chat_conversations")
    op.drop_index("uq_user_profiles_email", table_name="user_profiles")
    op.drop_index("ix_user_profiles_subscription_tier", table_name="user_profiles")
    op.drop_table("user_profiles")
    op.drop_index("ix_products_tech_stack", table_name="products", postgresql_using="gin")
    op.drop_index("ix_products_tags", table_name="products", postgresql_using="gin")
    op.drop_index("ix_products_status_created_at", table_name="products")
    op.drop_table("products")
    op.drop_table("product_collections")
    op.drop_index("ix_events_user_id_occurred_at", table_name="events")
    op.drop_index("ix_events_product_id_occurred_at", table_name="events")
    op.drop_index("ix_events_event_type_occurred_at", table_name="events")
    op.drop_table("events")
    op.execute("DROP FUNCTION ensure_event_partitions(date, integer)")
    op.execute("DROP FUNCTION check_pricing_tiers_contiguous()")
    op.execute("DROP FUNCTION uuid_generate_v7()")
