"""How many published passages hold each lexeme, kept by a statement trigger on knowledge_base.

Knowledge search weighs a question's words by their inverse document frequency and selects
candidates by its rarest words only. It counted each word's passages through the GIN index on
every search: a bitmap of every passage holding the word (tens of thousands for a common word at
200,000 passages), then the passages themselves, which was most of a search's time. The counts
now live in `knowledge_terms`, one row per lexeme, read by its primary key.

Published passages only: the application role reads the counts, and an unpublished draft's
words are not its business. The trigger function runs as its owner (SECURITY DEFINER), so
whoever writes knowledge_base keeps the counts without a grant on them; it locks the lexemes it
changes in order, so that two writers meet in the same order rather than deadlock. A count never
goes below zero and lexemes counted zero are removed: the counts are statistics, and a write to
knowledge_base must never fail for them.

Revision ID: 0020_knowledge_term_counts
Revises: 0019_mrr_by_billing_interval
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_knowledge_term_counts"
down_revision = "0019_mrr_by_billing_interval"
branch_labels = None
depends_on = None

COUNT_TERMS = """
CREATE FUNCTION count_knowledge_terms() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path TO 'pg_catalog', 'public' AS $$
DECLARE
  _lexemes text[];
  _changes integer[];
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    DELETE FROM public.knowledge_terms;
    RETURN NULL;
  ELSIF TG_OP = 'INSERT' THEN
    SELECT array_agg(lexeme ORDER BY lexeme), array_agg(change ORDER BY lexeme)
    INTO _lexemes, _changes
    FROM (SELECT lexeme, count(*)::integer AS change
          FROM added_rows a CROSS JOIN LATERAL unnest(tsvector_to_array(a.searchable_text)) AS lexeme
          WHERE a.is_published GROUP BY lexeme) changes;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT array_agg(lexeme ORDER BY lexeme), array_agg(change ORDER BY lexeme)
    INTO _lexemes, _changes
    FROM (SELECT lexeme, -count(*)::integer AS change
          FROM removed_rows r CROSS JOIN LATERAL unnest(tsvector_to_array(r.searchable_text)) AS lexeme
          WHERE r.is_published GROUP BY lexeme) changes;
  ELSE
    SELECT array_agg(lexeme ORDER BY lexeme), array_agg(change ORDER BY lexeme)
    INTO _lexemes, _changes
    FROM (SELECT lexeme, sum(change)::integer AS change
          FROM (SELECT a.searchable_text AS added, a.is_published AS added_published,
                       r.searchable_text AS removed, r.is_published AS removed_published
                FROM added_rows a JOIN removed_rows r USING (id)
                WHERE a.searchable_text IS DISTINCT FROM r.searchable_text
                   OR a.is_published IS DISTINCT FROM r.is_published) changed
          CROSS JOIN LATERAL (
            SELECT lexeme, 1 AS change FROM unnest(tsvector_to_array(changed.added)) AS lexeme
            WHERE changed.added_published
            UNION ALL
            SELECT lexeme, -1 FROM unnest(tsvector_to_array(changed.removed)) AS lexeme
            WHERE changed.removed_published) moved
          GROUP BY lexeme HAVING sum(change) <> 0) changes;
  END IF;
  IF _lexemes IS NULL THEN
    RETURN NULL;
  END IF;
  INSERT INTO public.knowledge_terms (lexeme, passages)
  SELECT lexeme, 0 FROM unnest(_lexemes) AS lexeme
  ON CONFLICT (lexeme) DO NOTHING;
  PERFORM FROM public.knowledge_terms t WHERE t.lexeme = ANY (_lexemes) ORDER BY t.lexeme FOR UPDATE;
  UPDATE public.knowledge_terms t SET passages = greatest(0, t.passages + c.change)
  FROM unnest(_lexemes, _changes) AS c(lexeme, change)
  WHERE t.lexeme = c.lexeme;
  DELETE FROM public.knowledge_terms t WHERE t.lexeme = ANY (_lexemes) AND t.passages = 0;
  RETURN NULL;
END
$$"""

TRIGGERS = (
    "CREATE TRIGGER count_knowledge_terms_insert AFTER INSERT ON knowledge_base"
    " REFERENCING NEW TABLE AS added_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_knowledge_terms()",
    "CREATE TRIGGER count_knowledge_terms_update AFTER UPDATE ON knowledge_base"
    " REFERENCING NEW TABLE AS added_rows OLD TABLE AS removed_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_knowledge_terms()",
    "CREATE TRIGGER count_knowledge_terms_delete AFTER DELETE ON knowledge_base"
    " REFERENCING OLD TABLE AS removed_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_knowledge_terms()",
    "CREATE TRIGGER count_knowledge_terms_truncate AFTER TRUNCATE ON knowledge_base"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_knowledge_terms()",
)

SECURITY_UP = (
    "ALTER TABLE knowledge_terms ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE knowledge_terms FORCE ROW LEVEL SECURITY",
    "GRANT SELECT ON knowledge_terms TO afilo_app",
    "GRANT SELECT ON knowledge_terms TO afilo_service",
    "CREATE POLICY knowledge_terms_app_select ON knowledge_terms AS PERMISSIVE"
    " FOR SELECT TO afilo_app\nUSING (true)",
    "CREATE POLICY knowledge_terms_service_select ON knowledge_terms AS PERMISSIVE"
    " FOR SELECT TO afilo_service\nUSING (true)",
)

BACKFILL = """
INSERT INTO knowledge_terms (lexeme, passages)
SELECT word, ndoc FROM ts_stat('SELECT searchable_text FROM public.knowledge_base WHERE is_published')
"""


def upgrade() -> None:
    op.create_table(
        "knowledge_terms",
        sa.Column("lexeme", sa.Text(), nullable=False),
        sa.Column("passages", sa.Integer(), nullable=False),
        sa.CheckConstraint("passages >= 0", name=op.f("ck_knowledge_terms_passages_not_negative")),
        sa.PrimaryKeyConstraint("lexeme", name=op.f("pk_knowledge_terms")),
    )
    op.execute(BACKFILL)
    op.execute(COUNT_TERMS)
    for statement in TRIGGERS + SECURITY_UP:
        op.execute(statement)


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER count_knowledge_terms_{event} ON knowledge_base")
    op.execute("DROP FUNCTION count_knowledge_terms()")
    op.drop_table("knowledge_terms")
