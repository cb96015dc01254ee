"""Chat: conversations, messages, the knowledge base (embeddings + full text) and bot analytics."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from afilo_db import rules
from afilo_db.models.base import Base, CreatedAt, UpdatedAt, UuidPk, performance_critical, personal

SEARCHABLE_TEXT = (
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(content, '')), 'B')"
)


class ChatConversation(Base):
    __tablename__ = "chat_conversations"
    __table_args__ = (
        CheckConstraint(rules.sql_in("status", rules.CONVERSATION_STATUSES), name="status_valid"),
        Index("ix_chat_conversations_user_id_updated_at", "user_id", "updated_at"),
    )

    id: Mapped[UuidPk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_profiles.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(info=personal())
    status: Mapped[str] = mapped_column(server_default="open")
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    messages: Mapped[list[ChatMessage]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ChatMessage.created_at",
    )


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (
        CheckConstraint(rules.sql_in("role", rules.CHAT_ROLES), name="role_valid"),
        CheckConstraint("length(content) BETWEEN 1 AND 32000", name="content_length"),
        Index(
            "ix_chat_messages_conversation_id_created_at",
            "conversation_id",
            "created_at",
            info=performance_critical(),
        ),
    )

    id: Mapped[UuidPk]
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_conversations.id", ondelete="CASCADE")
    )
    role: Mapped[str]
    content: Mapped[str] = mapped_column(info=personal("'[erased]'"))
    created_at: Mapped[CreatedAt]

    conversation: Mapped[ChatConversation] = relationship(back_populates="messages")


class KnowledgeBase(Base):
    """Answers for the chat bot, found by embedding similarity (HNSW) and full text (GIN)."""

    __tablename__ = "knowledge_base"
    __table_args__ = (
        CheckConstraint(
            rules.sql_in("content_type", rules.KNOWLEDGE_CONTENT_TYPES), name="content_type_valid"
        ),
        CheckConstraint("length(btrim(title)) BETWEEN 1 AND 300", name="title_length"),
        CheckConstraint("length(content) >= 1", name="content_not_empty"),
        CheckConstraint(
            f"{rules.sql_buyer_text_check('title')} AND {rules.sql_buyer_text_check('content')}",
            name="buyer_text",
        ),
        CheckConstraint(
            "(embedding IS NULL) = (embedding_model IS NULL)", name="embedding_has_model"
        ),
        CheckConstraint(
            "(embedding_next IS NULL) = (embedding_next_model IS NULL)",
            name="embedding_next_has_model",
        ),
        CheckConstraint("chunk_index >= 0", name="chunk_index_not_negative"),
        Index("ix_knowledge_base_source_chunk_index", "source", "chunk_index"),
        Index("ix_knowledge_base_content_type", "content_type"),
        Index("ix_knowledge_base_product_id", "product_id"),
        # The application role's read policy filters on it.
        Index("ix_knowledge_base_is_published", "is_published"),
        Index(
            "ix_knowledge_base_searchable_text",
            "searchable_text",
            postgresql_using="gin",
            info=performance_critical(),
        ),
        Index(
            "ix_knowledge_base_embedding",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 200},
            postgresql_ops={"embedding": "vector_cosine_ops"},
            info=performance_critical(),
        ),
    )

    id: Mapped[UuidPk]
    content_type: Mapped[str]
    title: Mapped[str]
    content: Mapped[str]
    source_url: Mapped[str | None]
    product_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("products.id", ondelete="SET NULL")
    )
    is_published: Mapped[bool] = mapped_column(Boolean, server_default="true")
    searchable_text: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(SEARCHABLE_TEXT, persisted=True)
    )
    embedding: Mapped[Any | None] = mapped_column(Vector(rules.EMBEDDING_DIMENSIONS))
    embedding_model: Mapped[str | None]
    # Where the chunk comes from (a file's URI, `catalog:product:<id>`) and its place there.
    source: Mapped[str | None]
    chunk_index: Mapped[int] = mapped_column(Integer, server_default="0")
    # sha256 of the sentences the model reads (chunking.passage_sentences): unchanged chunks are
    # not re-embedded.
    content_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    # `kb reembed` backfills the next model's vectors here, then switches them in.
    embedding_next: Mapped[Any | None] = mapped_column(Vector(rules.EMBEDDING_DIMENSIONS))
    embedding_next_model: Mapped[str | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]


class KnowledgeSyncQueue(Base):
    """Products whose knowledge (description, licence terms) must be re-ingested: filled by
    statement triggers on products and variants, drained by `kb sync`. No foreign key: a deleted
    product stays queued so that its passages are removed."""

    __tablename__ = "knowledge_sync_queue"
    __table_args__ = (Index("ix_knowledge_sync_queue_queued_at", "queued_at"),)

    product_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    queued_at: Mapped[CreatedAt]


class KnowledgeTerm(Base):
    """How many published passages hold each lexeme of `searchable_text`: the document
    frequencies knowledge search weighs a question's words by, read by primary key instead of
    counted through the GIN index on every search. Kept by a statement trigger on knowledge_base
    (revision 0020); lexemes no passage holds have no row."""

    __tablename__ = "knowledge_terms"
    __table_args__ = (CheckConstraint("passages >= 0", name="passages_not_negative"),)

    lexeme: Mapped[str] = mapped_column(primary_key=True)
    passages: Mapped[int]


class BotAnalytics(Base):
    """Per conversation and day: how the bot did."""

    __tablename__ = "bot_analytics"
    __table_args__ = (
        CheckConstraint("messages >= 0 AND answered >= 0 AND answered <= messages", name="counts"),
        CheckConstraint("avg_latency_ms IS NULL OR avg_latency_ms >= 0", name="latency_positive"),
        CheckConstraint(
            "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="satisfaction_range"
        ),
        CheckConstraint("passages_used >= 0", name="passages_used_not_negative"),
        Index("uq_bot_analytics_conversation_id_day", "conversation_id", "day", unique=True),
        Index("ix_bot_analytics_day", "day"),
    )

    id: Mapped[UuidPk]
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat_conversations.id", ondelete="CASCADE")
    )
    day: Mapped[date] = mapped_column(Date)
    messages: Mapped[int] = mapped_column(Integer, server_default="0")
    answered: Mapped[int] = mapped_column(Integer, server_default="0")
    resolved: Mapped[bool] = mapped_column(Boolean, server_default="false")
    avg_latency_ms: Mapped[int | None] = mapped_column(Integer)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    # Knowledge passages the bot's answers used (services.conversations.record_answer).
    passages_used: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[CreatedAt]
