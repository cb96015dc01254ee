"""Conversations with the chat bot: start one, add messages, page through them, build the
context a bot answers from, and record how it did.

A user's own actions (starting a conversation, asking) run as that user (`as_user`), so row-level
security decides what they reach: another user's conversation is simply not found. The bot's
answers and the analytics are written in the service context. Generating the answer is the
application's model's job; `build_context` gives it the recent turns and the passages found,
within a token budget, with the passage ids it may cite.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from afilo_db.errors import NotFoundError, ValidationError
from afilo_db.knowledge.chunking import count_tokens
from afilo_db.knowledge.embedders import Embedder
from afilo_db.security import as_user, service_context
from afilo_db.services import knowledge
from afilo_db.services.pagination import decode_cursor, encode_cursor
from afilo_db.services.transaction import translated_errors

MAX_MESSAGE_CHARS: Final = 32000
MAX_TITLE_CHARS: Final = 300
MAX_PAGE: Final = 200
DEFAULT_CONTEXT_TOKENS: Final = 1500
# Of the context's budget, the share the recent turns may take; passages get the rest.
TURNS_SHARE: Final = 0.35
NO_GOOD_MATCH: Final = (
    "Sources: none. No passage of the knowledge base is relevant enough to this question:"
    " say so instead of answering from general knowledge."
)


@dataclass(frozen=True)
class Message:
    id: uuid.UUID
    role: str
    content: str
    created_at: datetime


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]
    """Newest first."""
    next_cursor: str | None
    """Pass as `before` for the older messages; None when there are none."""


@dataclass(frozen=True)
class CitedPassage:
    citation: int
    passage: knowledge.Passage


@dataclass(frozen=True)
class BotContext:
    question: str
    turns: list[Message]
    """Oldest first, the most recent that fit the budget."""
    passages: list[CitedPassage]
    tokens: int
    budget: int
    cited_ids: list[uuid.UUID] = field(default_factory=list)
    no_good_match: bool = False
    """No passage reached the relevance threshold: the bot should say it does not know rather
    than answer from unrelated passages."""

    def render(self) -> str:
        """The context as a bot's prompt reads it: sources numbered for citation."""
        lines = [NO_GOOD_MATCH if self.no_good_match else "Sources (cite as [n]):"]
        for cited in self.passages:
            lines.append(f"[{cited.citation}] {cited.passage.title}\n{cited.passage.content}")
        if self.turns:
            lines.append("Conversation so far:")
            lines.extend(f"{turn.role}: {turn.content}" for turn in self.turns)
        lines.append(f"user: {self.question}")
        return "\n\n".join(lines)


def _check_text(name: str, value: str, limit: int) -> str:
    if not value.strip():
        raise ValidationError({name: "must not be empty"})
    if len(value) > limit:
        raise ValidationError({name: f"must be at most {limit} characters"})
    if "\x00" in value:
        raise ValidationError({name: "must not contain NUL characters"})
    return value


def _conversation_id(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError as error:
        raise ValidationError({"conversation_id": "must be a UUID"}) from error


def start_conversation(
    session: Session, clerk_user_id: str, *, title: str | None = None
) -> uuid.UUID:
    """A new open conversation owned by the user; returns its id."""
    if title is not None:
        _check_text("title", title, MAX_TITLE_CHARS)
    as_user(session, clerk_user_id)
    with translated_errors():
        conversation_id = session.execute(
            text(
                "INSERT INTO chat_conversations (user_id, title)"
                " SELECT id, :title FROM user_profiles WHERE id = current_user_profile_id()"
                " RETURNING id"
            ),
            {"title": title},
        ).scalar_one_or_none()
    if conversation_id is None:
        raise NotFoundError(f"no user with Clerk id {clerk_user_id}")
    return uuid.UUID(str(conversation_id))


def _visible(session: Session, conversation_id: uuid.UUID) -> None:
    found = session.execute(
        text("SELECT 1 FROM chat_conversations WHERE id = :id"), {"id": conversation_id}
    ).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"no conversation {conversation_id}")


_INSERT_MESSAGE = text(
    "WITH message AS (INSERT INTO chat_messages (conversation_id, role, content)"
    " VALUES (:conversation_id, :role, :content) RETURNING id, role, content, created_at)"
    ", touched AS (UPDATE chat_conversations SET updated_at = now()"
    " WHERE id = :conversation_id)"
    " SELECT * FROM message"
)


def _insert_message(
    session: Session, conversation_id: uuid.UUID, role: str, content: str
) -> Message:
    with translated_errors():
        row = session.execute(
            _INSERT_MESSAGE,
            {"conversation_id": conversation_id, "role": role, "content": content},
        ).one()
    return Message(row.id, row.role, row.content, row.created_at)


def add_user_message(
    session: Session, clerk_user_id: str, conversation_id: uuid.UUID | str, content: str
) -> Message:
    """The user's message, written as the user: only into a conversation of their own."""
    conversation = _conversation_id(conversation_id)
    _check_text("content", content, MAX_MESSAGE_CHARS)
    as_user(session, clerk_user_id)
    _visible(session, conversation)
    return _insert_message(session, conversation, "user", content)


def add_assistant_message(
    session: Session, conversation_id: uuid.UUID | str, content: str
) -> Message:
    """The bot's answer, written in the service context (users cannot write as the bot)."""
    conversation = _conversation_id(conversation_id)
    _check_text("content", content, MAX_MESSAGE_CHARS)
    with service_context(session):
        _visible(session, conversation)
        return _insert_message(session, conversation, "assistant", content)


def history(
    session: Session,
    clerk_user_id: str,
    conversation_id: uuid.UUID | str,
    *,
    limit: int = 50,
    before: str | None = None,
) -> MessagePage:
    """The conversation's messages, newest first, a page at a time: keyset pagination on
    (created_at, id), which the index on (conversation_id, created_at) serves."""
    conversation = _conversation_id(conversation_id)
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError({"limit": f"must be between 1 and {MAX_PAGE}"})
    after = decode_cursor(before, "before") if before is not None else None
    as_user(session, clerk_user_id)
    _visible(session, conversation)
    return _page(session, conversation, limit, after)


def _page(
    session: Session,
    conversation_id: uuid.UUID,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> MessagePage:
    rows = session.execute(
        text(
            "SELECT id, role, content, created_at FROM chat_messages"
            " WHERE conversation_id = :conversation_id"
            " AND (CAST(:at AS timestamptz) IS NULL"
            "      OR (created_at, id) < (CAST(:at AS timestamptz), CAST(:id AS uuid)))"
            " ORDER BY created_at DESC, id DESC LIMIT :limit"
        ),
        {
            "conversation_id": conversation_id,
            "at": before[0] if before else None,
            "id": before[1] if before else None,
            "limit": limit + 1,
        },
    ).all()
    messages = [Message(row.id, row.role, row.content, row.created_at) for row in rows[:limit]]
    cursor = encode_cursor(messages[-1].created_at, messages[-1].id) if len(rows) > limit else None
    return MessagePage(messages, cursor)


def _fit(budget: int, items: Sequence[str]) -> int:
    """How many of `items`, taken in order, fit in `budget` tokens."""
    used = 0
    for count, item in enumerate(items):
        used += count_tokens(item)
        if used > budget:
            return count
    return len(items)


def build_context(
    session: Session,
    question: str,
    *,
    clerk_user_id: str | None = None,
    conversation_id: uuid.UUID | str | None = None,
    budget: int = DEFAULT_CONTEXT_TOKENS,
    passages: int = 5,
    types: Sequence[str] | None = None,
    embedder: Embedder | None = None,
    min_relevance: float = knowledge.RELEVANCE_THRESHOLD,
) -> BotContext:
    """What a bot needs to answer `question`: the conversation's recent turns (when a user and
    conversation are given, read as that user) and the best passages, within `budget` tokens
    (words and punctuation marks), each passage numbered for citation. Passages below
    `min_relevance` are never cited: when none reaches it, `no_good_match` is true and the
    prompt says there is no source."""
    _check_text("question", question, knowledge.MAX_QUESTION_CHARS)
    if budget < 50:
        raise ValidationError({"budget": "must be at least 50 tokens"})
    turns: list[Message] = []
    if conversation_id is not None:
        if clerk_user_id is None:
            raise ValidationError({"clerk_user_id": "is required to read a conversation"})
        recent = history(session, clerk_user_id, conversation_id, limit=MAX_PAGE).messages
        turn_budget = int(budget * TURNS_SHARE)
        kept = _fit(turn_budget, [f"{turn.role}: {turn.content}" for turn in recent])
        turns = list(reversed(recent[:kept]))
    used = count_tokens(question) + sum(count_tokens(f"{t.role}: {t.content}") for t in turns)
    found = knowledge.search(
        session,
        question,
        types=types,
        limit=passages,
        embedder=embedder,
        min_relevance=min_relevance,
    )
    cited: list[CitedPassage] = []
    for passage in found:
        size = count_tokens(f"[{len(cited) + 1}] {passage.title}\n{passage.content}")
        if used + size > budget:
            break
        used += size
        cited.append(CitedPassage(len(cited) + 1, passage))
    return BotContext(
        question=question,
        turns=turns,
        passages=cited,
        tokens=used,
        budget=budget,
        cited_ids=[item.passage.id for item in cited],
        no_good_match=not found,
    )


def record_answer(
    session: Session,
    conversation_id: uuid.UUID | str,
    *,
    latency_ms: int,
    passages_used: int,
    answered: bool = True,
) -> None:
    """Count one bot answer in today's analytics row of the conversation (service context):
    messages, answered, the running average latency and the passages it used."""
    conversation = _conversation_id(conversation_id)
    problems = {}
    if latency_ms < 0:
        problems["latency_ms"] = "must not be negative"
    if passages_used < 0:
        problems["passages_used"] = "must not be negative"
    if problems:
        raise ValidationError(problems)
    with service_context(session), translated_errors():
        _visible(session, conversation)
        session.execute(
            text(
                "INSERT INTO bot_analytics AS a (conversation_id, day, messages, answered,"
                " avg_latency_ms, passages_used)"
                " VALUES (:conversation_id, (now() AT TIME ZONE 'UTC')::date, 1, :answered,"
                " :latency, :passages)"
                " ON CONFLICT (conversation_id, day) DO UPDATE SET"
                " messages = a.messages + 1,"
                " answered = a.answered + excluded.answered,"
                " avg_latency_ms = round((coalesce(a.avg_latency_ms, 0) * a.messages"
                "   + excluded.avg_latency_ms) / (a.messages + 1.0)),"
                " passages_used = a.passages_used + excluded.passages_used"
            ),
            {
                "conversation_id": conversation,
                "answered": int(answered),
                "latency": latency_ms,
                "passages": passages_used,
            },
        )


def record_feedback(
    session: Session,
    conversation_id: uuid.UUID | str,
    *,
    resolved: bool | None = None,
    satisfaction: int | None = None,
) -> None:
    """The user's verdict on today's answers: resolved (which also resolves the conversation)
    and a satisfaction score from 1 to 5."""
    conversation = _conversation_id(conversation_id)
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise ValidationError({"satisfaction": "must be between 1 and 5"})
    with service_context(session), translated_errors():
        _visible(session, conversation)
        session.execute(
            text(
                "INSERT INTO bot_analytics AS a (conversation_id, day, resolved, satisfaction)"
                " VALUES (:conversation_id, (now() AT TIME ZONE 'UTC')::date,"
                " coalesce(:resolved, false), :satisfaction)"
                " ON CONFLICT (conversation_id, day) DO UPDATE SET"
                " resolved = coalesce(:resolved, a.resolved),"
                " satisfaction = coalesce(:satisfaction, a.satisfaction)"
            ),
            {"conversation_id": conversation, "resolved": resolved, "satisfaction": satisfaction},
        )
        if resolved:
            session.execute(
                text(
                    "UPDATE chat_conversations SET status = 'resolved', updated_at = now()"
                    " WHERE id = :id"
                ),
                {"id": conversation},
            )
