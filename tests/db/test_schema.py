"""Every table and every performance-critical index exists with the right definition."""

from __future__ import annotations

import psycopg
import pytest

from afilo_db.data.up import table_names

EXPECTED_TABLES = {
    "products", "product_variants", "product_pricing_tiers", "product_collections",
    "product_collection_products", "user_profiles", "user_subscriptions", "user_activity_log",
    "cart_items", "downloads", "purchases", "chat_conversations", "chat_messages",
    "knowledge_base", "bot_analytics", "events", "analytics_dirty_days", "analytics_rollup_state",
    "analytics_funnel_daily", "analytics_payments", "knowledge_sync_queue", "knowledge_terms",
    "webhook_events", "webhook_refusals", "billing_settings", "stripe_invoice_payments",
}  # fmt: skip

# (table, a fragment the index definition must contain), as pg_indexes.indexdef prints it.
EXPECTED_INDEXES = [
    ("products", "UNIQUE INDEX uq_products_handle ON public.products USING btree (handle)"),
    ("products", "UNIQUE INDEX uq_products_stripe_product_id ON public.products USING btree (stripe_product_id)"),
    ("products", "INDEX ix_products_tags ON public.products USING gin (tags)"),
    ("products", "INDEX ix_products_tech_stack ON public.products USING gin (tech_stack)"),
    ("product_variants", "UNIQUE INDEX uq_product_variants_sku ON public.product_variants USING btree (sku)"),
    ("product_variants", "INDEX ix_product_variants_license_type ON public.product_variants USING btree (license_type)"),
    ("product_variants", "UNIQUE INDEX uq_product_variants_stripe_price_id ON public.product_variants USING btree (stripe_price_id)"),
    ("user_profiles", "UNIQUE INDEX uq_user_profiles_clerk_user_id ON public.user_profiles USING btree (clerk_user_id)"),
    ("user_profiles", "UNIQUE INDEX uq_user_profiles_email ON public.user_profiles USING btree (lower(email))"),
    ("user_profiles", "INDEX ix_user_profiles_subscription_tier ON public.user_profiles USING btree (subscription_tier)"),
    ("knowledge_base", "INDEX ix_knowledge_base_content_type ON public.knowledge_base USING btree (content_type)"),
    ("knowledge_base", "INDEX ix_knowledge_base_embedding ON public.knowledge_base USING hnsw (embedding vector_cosine_ops) WITH (m='16', ef_construction='200')"),
    ("knowledge_base", "INDEX ix_knowledge_base_searchable_text ON public.knowledge_base USING gin (searchable_text)"),
    ("purchases", "INDEX ix_purchases_created_at ON public.purchases USING btree (created_at)"),
    ("downloads", "INDEX ix_downloads_created_at ON public.downloads USING btree (created_at)"),
    ("knowledge_base", "INDEX ix_knowledge_base_source_chunk_index ON public.knowledge_base USING btree (source, chunk_index)"),
    ("knowledge_sync_queue", "INDEX ix_knowledge_sync_queue_queued_at ON public.knowledge_sync_queue USING btree (queued_at)"),
    ("webhook_events", "UNIQUE INDEX uq_webhook_events_provider_event_id ON public.webhook_events USING btree (provider, event_id)"),
    ("user_subscriptions", "UNIQUE INDEX uq_user_subscriptions_current ON public.user_subscriptions USING btree (stripe_subscription_id) WHERE is_current"),
    ("chat_messages", "INDEX ix_chat_messages_conversation_id_created_at ON public.chat_messages USING btree (conversation_id, created_at)"),
]  # fmt: skip


def test_every_table_exists(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = connection.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " UNION SELECT relname FROM pg_class WHERE relkind = 'p'"
    ).fetchall()
    present = {str(row[0]) for row in rows}
    assert present >= EXPECTED_TABLES
    assert set(table_names()) == EXPECTED_TABLES


@pytest.mark.parametrize(("table", "definition"), EXPECTED_INDEXES)
def test_index_definition(
    connection: psycopg.Connection[tuple[object, ...]], table: str, definition: str
) -> None:
    rows = connection.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = %s", (table,)
    ).fetchall()
    definitions = [str(row[0]) for row in rows]
    assert any(definition in found for found in definitions), definitions


def test_searchable_text_is_a_weighted_generated_tsvector(
    connection: psycopg.Connection[tuple[object, ...]],
) -> None:
    row = connection.execute(
        "SELECT a.attgenerated, format_type(a.atttypid, a.atttypmod),"
        " pg_get_expr(d.adbin, d.adrelid)"
        " FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = 'knowledge_base'::regclass AND a.attname = 'searchable_text'"
    ).fetchone()
    assert row is not None
    generated, type_name, expression = row
    assert (generated, type_name) == ("s", "tsvector")
    assert "setweight" in str(expression) and "'A'" in str(expression) and "'B'" in str(expression)


def test_embedding_is_a_384_dimension_vector(
    connection: psycopg.Connection[tuple[object, ...]],
) -> None:
    row = connection.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'knowledge_base'::regclass AND attname = 'embedding'"
    ).fetchone()
    assert row == ("vector(384)",)


def test_events_is_partitioned_by_month(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    strategy = connection.execute(
        "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'events'::regclass"
    ).fetchone()
    assert strategy == ("r",)
    connection.execute("SELECT ensure_event_partitions('2031-02-01', 1)")
    connection.execute(
        "INSERT INTO events (occurred_at, event_type) VALUES ('2031-02-28 23:30:00+00', 'probe.hit')"
    )
    partition = connection.execute(
        "SELECT tableoid::regclass::text FROM events WHERE event_type = 'probe.hit'"
    ).fetchone()
    assert partition == ("events_p203102",)


def test_primary_keys_are_time_ordered_uuids(
    connection: psycopg.Connection[tuple[object, ...]],
) -> None:
    rows = connection.execute("SELECT uuid_generate_v7() FROM generate_series(1, 50)").fetchall()
    values = [row[0] for row in rows]
    assert all(value.version == 7 for value in values)  # type: ignore[attr-defined]
    # Same millisecond or later: the leading 48 bits never go backwards.
    stamps = [value.int >> 80 for value in values]  # type: ignore[attr-defined]
    assert stamps == sorted(stamps)


def test_no_check_uses_a_bounded_repetition(
    connection: psycopg.Connection[tuple[object, ...]],
) -> None:
    # PostgreSQL runs `x{6,64}` 10 to 13 times slower than `x+` with the length compared apart, on
    # every row every write and restore checks (revision 0008_fast_format_checks).
    slow = connection.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint"
        r" WHERE contype = 'c' AND pg_get_constraintdef(oid) ~ '\{\d+,\d+\}'"
    ).fetchall()
    assert slow == []
