"""Conversations: users write their own through row-level security, the bot in the service
context, history pages by keyset, the bot's context fits its budget and cites its passages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from afilo_db.errors import NotFoundError, ValidationError
from afilo_db.knowledge.chunking import count_tokens
from afilo_db.security.roles import SERVICE_ROLE
from afilo_db.services import conversations
from afilo_db.services.transaction import unit_of_work
from tests.security.conftest import app_engine, as_app_role

ALICE = "user_alice000001"
BOB = "user_bob000000001"


@pytest.fixture(scope="module")
def chat_engine(demo_url: str, app_password: str) -> Iterator[Engine]:
    """The application role on the demo database, with two users of its own."""
    with psycopg.connect(demo_url) as owner:
        owner.execute(
            "INSERT INTO user_profiles (clerk_user_id, email) VALUES (%s, 'alice@chat.test'),"
            " (%s, 'bob@chat.test') ON CONFLICT DO NOTHING",
            (ALICE, BOB),
        )
    engine = app_engine(as_app_role(demo_url, app_password))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def bot_engine(demo_url: str, service_password: str) -> Iterator[Engine]:
    """The service role's own login (SERVICE_DATABASE_URL): how the bot's back end writes."""
    engine = app_engine(as_app_role(demo_url, service_password, SERVICE_ROLE))
    yield engine
    engine.dispose()


def test_a_conversation_as_the_user_and_the_bot(chat_engine: Engine, bot_engine: Engine) -> None:
    with unit_of_work(chat_engine) as session:
        conversation = conversations.start_conversation(session, ALICE, title="Refunds")
        conversations.add_user_message(session, ALICE, conversation, "Can I get a refund?")
    with unit_of_work(bot_engine) as session:
        conversations.add_assistant_message(session, conversation, "Yes, within 14 days [1].")
        conversations.record_answer(session, conversation, latency_ms=800, passages_used=3)
        conversations.record_answer(session, conversation, latency_ms=400, passages_used=2)
        conversations.record_feedback(session, conversation, resolved=True, satisfaction=5)
    with unit_of_work(chat_engine) as session:
        page = conversations.history(session, ALICE, conversation)
        assert [(m.role, m.content) for m in reversed(page.messages)] == [
            ("user", "Can I get a refund?"), ("assistant", "Yes, within 14 days [1]."),
        ]  # fmt: skip
        # Bob reaches none of it: not found, as if it did not exist.
        with pytest.raises(NotFoundError):
            conversations.history(session, BOB, conversation)
    with unit_of_work(chat_engine) as session, pytest.raises(NotFoundError):
        conversations.add_user_message(session, BOB, conversation, "let me in")
    with Session(bot_engine) as session, session.begin():
        row = session.execute(
            text(
                "SELECT messages, answered, avg_latency_ms, passages_used, resolved, satisfaction,"
                " c.status FROM bot_analytics a JOIN chat_conversations c"
                " ON c.id = a.conversation_id WHERE a.conversation_id = :id"
            ),
            {"id": conversation},
        ).one()
    assert tuple(row) == (2, 2, 600, 5, True, 5, "resolved")


def test_history_pages_by_keyset_newest_first(chat_engine: Engine) -> None:
    with unit_of_work(chat_engine) as session:
        conversation = conversations.start_conversation(session, ALICE)
        for number in range(7):
            conversations.add_user_message(session, ALICE, conversation, f"message {number}")
    seen: list[str] = []
    cursor = None
    with unit_of_work(chat_engine) as session:
        while True:
            page = conversations.history(session, ALICE, conversation, limit=3, before=cursor)
            seen.extend(message.content for message in page.messages)
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen == [f"message {number}" for number in reversed(range(7))]


def test_the_bot_context_fits_its_budget_and_cites_passages(chat_engine: Engine) -> None:
    with unit_of_work(chat_engine) as session:
        conversation = conversations.start_conversation(session, ALICE)
        for number in range(30):
            conversations.add_user_message(
                session, ALICE, conversation, f"turn {number}: " + "earlier chatter " * 20
            )
        context = conversations.build_context(
            session, "How long do I have to ask for a refund?",
            clerk_user_id=ALICE, conversation_id=conversation, budget=600,
        )  # fmt: skip
    assert context.tokens <= 600
    assert context.passages and context.cited_ids == [p.passage.id for p in context.passages]
    assert context.passages[0].passage.source == "sample:policy/refunds.md"
    # The most recent turns, oldest first, within their share.
    assert context.turns and context.turns[-1].content.startswith("turn 29:")
    assert sum(count_tokens(f"{t.role}: {t.content}") for t in context.turns) <= 600 * 0.35
    prompt = context.render()
    assert "[1] Refund policy" in prompt and prompt.endswith(
        "user: How long do I have to ask for a refund?"
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: conversations.start_conversation(s, ALICE, title="x" * 301), "title"),
        (lambda s: conversations.start_conversation(s, "not-a-clerk-id"), "clerk_user_id"),
        (lambda s: conversations.add_user_message(s, ALICE, "nope", "hi"), "conversation_id"),
        (lambda s: conversations.add_user_message(s, ALICE, uuid.uuid4(), " "), "content"),
        (lambda s: conversations.history(s, ALICE, uuid.uuid4(), before="garbage"), "before"),
        (lambda s: conversations.history(s, ALICE, uuid.uuid4(), limit=0), "limit"),
        (lambda s: conversations.record_feedback(s, uuid.uuid4(), satisfaction=9), "satisfaction"),
        (
            lambda s: conversations.record_answer(s, uuid.uuid4(), latency_ms=-1, passages_used=0),
            "latency_ms",
        ),
        (lambda s: conversations.build_context(s, "q", budget=10), "budget"),
        (
            lambda s: conversations.build_context(s, "q", conversation_id=uuid.uuid4()),
            "clerk_user_id",
        ),
    ],
)
def test_bad_input_is_named(chat_engine: Engine, call: object, field: str) -> None:
    with Session(chat_engine) as session, pytest.raises(ValidationError) as error:
        call(session)  # type: ignore[operator]
    assert field in error.value.problems


def test_an_unknown_user_cannot_start_a_conversation(chat_engine: Engine) -> None:
    with Session(chat_engine) as session, pytest.raises(NotFoundError):
        conversations.start_conversation(session, "user_nobody000001")
