"""The chat bot's memory: chunk identity and content hashes on knowledge_base, a second vector
column for re-embedding without downtime, and a queue of catalog changes to re-ingest.

- `source`, `chunk_index`: where a chunk comes from (a file's URI, `catalog:product:<id>`), and
  its place there; `content_hash`: sha256 of the embedded text (title, newline, content), so an
  unchanged chunk is never embedded again. Existing rows get their hash here.
- `embedding_next`, `embedding_next_model`: `kb reembed` backfills the next model's vectors
  beside the live ones, then switches in one transaction.
- `knowledge_sync_queue`: statement-level triggers on products and variants (whatever writes
  them: the services, the import's set-based upserts, COPY, raw SQL) queue the product ids;
  `kb sync` drains the queue and re-embeds only what changed. Embedding stays out of the write.
- Content types `docs` and `licence` join the allowed ones; `bot_analytics.passages_used`
  counts the knowledge passages the bot's answers used.

Frozen: every statement is written out here and imports nothing of afilo_db.

Revision ID: 0003_knowledge
Revises: 0002_row_level_security
Create Date: 2026-12-01 21:30:00.000000

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_knowledge"
down_revision: str | None = "0002_row_level_security"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTENT_TYPES_BEFORE = "content_type IN ('faq', 'guide', 'policy', 'product', 'troubleshooting')"
CONTENT_TYPES_AFTER = (
    "content_type IN ('faq', 'guide', 'policy', 'product', 'troubleshooting', 'docs', 'licence')"
)

QUEUE_FUNCTIONS = (
    """
CREATE FUNCTION queue_knowledge_sync_products() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path TO 'pg_catalog', 'public' AS $$
BEGIN
  INSERT INTO public.knowledge_sync_queue (product_id)
  SELECT DISTINCT id FROM changed_rows
  ON CONFLICT (product_id) DO NOTHING;
  RETURN NULL;
END
$$""",
    """
CREATE FUNCTION queue_knowledge_sync_variants() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path TO 'pg_catalog', 'public' AS $$
BEGIN
  INSERT INTO public.knowledge_sync_queue (product_id)
  SELECT DISTINCT product_id FROM changed_rows
  ON CONFLICT (product_id) DO NOTHING;
  RETURN NULL;
END
$$""",
)

TRIGGERS = tuple(
    f"CREATE TRIGGER queue_knowledge_sync_{event.lower()} AFTER {event} ON {table} "
    f"REFERENCING {'OLD' if event == 'DELETE' else 'NEW'} TABLE AS changed_rows "
    f"FOR EACH STATEMENT EXECUTE FUNCTION queue_knowledge_sync_{kind}()"
    for table, kind in (("products", "products"), ("product_variants", "variants"))
    for event in ("INSERT", "UPDATE", "DELETE")
)

SECURITY_UP = (
    "ALTER TABLE knowledge_sync_queue ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE knowledge_sync_queue FORCE ROW LEVEL SECURITY",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON knowledge_sync_queue TO afilo_service",
    "CREATE POLICY knowledge_sync_queue_service_select ON knowledge_sync_queue "
    "AS PERMISSIVE FOR SELECT TO afilo_service\nUSING (true)",
    "CREATE POLICY knowledge_sync_queue_service_insert ON knowledge_sync_queue "
    "AS PERMISSIVE FOR INSERT TO afilo_service\nWITH CHECK (true)",
    "CREATE POLICY knowledge_sync_queue_service_update ON knowledge_sync_queue "
    "AS PERMISSIVE FOR UPDATE TO afilo_service\nUSING (true)\nWITH CHECK (true)",
    "CREATE POLICY knowledge_sync_queue_service_delete ON knowledge_sync_queue "
    "AS PERMISSIVE FOR DELETE TO afilo_service\nUSING (true)",
)


def upgrade() -> None:
    op.execute("ALTER TABLE knowledge_base DROP CONSTRAINT ck_knowledge_base_content_type_valid")
    op.execute(
        "ALTER TABLE knowledge_base ADD CONSTRAINT ck_knowledge_base_content_type_valid "
        f"CHECK ({CONTENT_TYPES_AFTER})"
    )
    op.execute("ALTER TABLE knowledge_base ADD COLUMN source text")
    op.execute("ALTER TABLE knowledge_base ADD COLUMN chunk_index integer DEFAULT 0 NOT NULL")
    op.execute("ALTER TABLE knowledge_base ADD COLUMN content_hash bytea")
    op.execute("ALTER TABLE knowledge_base ADD COLUMN embedding_next vector(384)")
    op.execute("ALTER TABLE knowledge_base ADD COLUMN embedding_next_model text")
    op.execute(
        "UPDATE knowledge_base SET content_hash = "
        "sha256(convert_to(title || E'\\n' || content, 'UTF8'))"
    )
    op.execute(
        "ALTER TABLE knowledge_base ADD CONSTRAINT ck_knowledge_base_chunk_index_not_negative "
        "CHECK (chunk_index >= 0)"
    )
    op.execute(
        "ALTER TABLE knowledge_base ADD CONSTRAINT ck_knowledge_base_embedding_next_has_model "
        "CHECK ((embedding_next IS NULL) = (embedding_next_model IS NULL))"
    )
    op.execute(
        "CREATE INDEX ix_knowledge_base_source_chunk_index ON knowledge_base (source, chunk_index)"
    )
    op.execute(
        "CREATE TABLE knowledge_sync_queue ("
        "product_id uuid NOT NULL, "
        "queued_at timestamp with time zone DEFAULT now() NOT NULL, "
        "CONSTRAINT pk_knowledge_sync_queue PRIMARY KEY (product_id))"
    )
    op.execute("CREATE INDEX ix_knowledge_sync_queue_queued_at ON knowledge_sync_queue (queued_at)")
    op.execute("ALTER TABLE bot_analytics ADD COLUMN passages_used integer DEFAULT 0 NOT NULL")
    op.execute(
        "ALTER TABLE bot_analytics ADD CONSTRAINT ck_bot_analytics_passages_used_not_negative "
        "CHECK (passages_used >= 0)"
    )
    for statement in QUEUE_FUNCTIONS + TRIGGERS + SECURITY_UP:
        op.execute(statement)


def downgrade() -> None:
    op.execute("ALTER TABLE bot_analytics DROP COLUMN passages_used")
    for table, kind in (("products", "products"), ("product_variants", "variants")):
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER queue_knowledge_sync_{event} ON {table}")
        op.execute(f"DROP FUNCTION queue_knowledge_sync_{kind}()")
    op.execute("DROP TABLE knowledge_sync_queue")
    op.execute("DROP INDEX ix_knowledge_base_source_chunk_index")
    op.execute("DELETE FROM knowledge_base WHERE content_type IN ('docs', 'licence')")
    op.execute(
        "ALTER TABLE knowledge_base DROP CONSTRAINT ck_knowledge_base_embedding_next_has_model, "
        "DROP CONSTRAINT ck_knowledge_base_chunk_index_not_negative, "
        "DROP COLUMN embedding_next_model, DROP COLUMN embedding_next, "
        "DROP COLUMN content_hash, DROP COLUMN chunk_index, DROP COLUMN source"
    )
    op.execute("ALTER TABLE knowledge_base DROP CONSTRAINT ck_knowledge_base_content_type_valid")
    op.execute(
        "ALTER TABLE knowledge_base ADD CONSTRAINT ck_knowledge_base_content_type_valid "
        f"CHECK ({CONTENT_TYPES_BEFORE})"
    )
