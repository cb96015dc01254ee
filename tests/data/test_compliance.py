"""A user's data: exported from every table that holds any, erased without touching billing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from afilo_db.data import seed
from afilo_db.data.erase import ERASED_ACTION, erase_user, personal_columns
from afilo_db.data.export import export_tables, export_user
from afilo_db.errors import ConflictError, NotFoundError, ValidationError
from afilo_db.models import Base

Connection = psycopg.Connection[tuple[Any, ...]]

# Written by hand, independently of the ownership derivation: how each table reaches a user.
USER_ROWS = {
    "user_profiles": "SELECT id FROM user_profiles WHERE id = %(u)s",
    "user_subscriptions": "SELECT id FROM user_subscriptions WHERE user_id = %(u)s",
    "purchases": "SELECT id FROM purchases WHERE user_id = %(u)s",
    "user_activity_log": "SELECT id FROM user_activity_log WHERE user_id = %(u)s",
    "cart_items": "SELECT id FROM cart_items WHERE user_id = %(u)s",
    "downloads": "SELECT id FROM downloads WHERE user_id = %(u)s",
    "chat_conversations": "SELECT id FROM chat_conversations WHERE user_id = %(u)s",
    "chat_messages": "SELECT m.id FROM chat_messages m JOIN chat_conversations c"
    " ON c.id = m.conversation_id WHERE c.user_id = %(u)s",
    "bot_analytics": "SELECT b.id FROM bot_analytics b JOIN chat_conversations c"
    " ON c.id = b.conversation_id WHERE c.user_id = %(u)s",
    "events": "SELECT id FROM events WHERE user_id = %(u)s",
    "webhook_events": "SELECT id FROM webhook_events WHERE user_id = %(u)s",
}


@pytest.fixture
def seeded(connection: Connection) -> Connection:
    seed.seed(connection, products=80, seed_value=11)
    connection.commit()
    return connection


def busiest_user(connection: Connection) -> tuple[uuid.UUID, str]:
    """A user with rows in as many tables as possible (chats, purchases, a subscription)."""
    row = connection.execute(
        "SELECT u.id, u.clerk_user_id FROM user_profiles u"
        " WHERE EXISTS (SELECT 1 FROM chat_messages m JOIN chat_conversations c"
        "               ON c.id = m.conversation_id WHERE c.user_id = u.id)"
        "   AND EXISTS (SELECT 1 FROM purchases p WHERE p.user_id = u.id)"
        "   AND EXISTS (SELECT 1 FROM user_subscriptions s WHERE s.user_id = u.id)"
        "   AND EXISTS (SELECT 1 FROM cart_items i WHERE i.user_id = u.id)"
        " ORDER BY u.id LIMIT 1"
    ).fetchone()
    assert row is not None, "the seed should give some user rows everywhere"
    return row[0], row[1]


def user_row_ids(connection: Connection, user_id: uuid.UUID) -> dict[str, set[str]]:
    return {
        table: {str(r[0]) for r in connection.execute(query, {"u": user_id})}
        for table, query in USER_ROWS.items()
    }


def test_export_holds_the_users_rows_and_no_one_elses(
    seeded: Connection, database_url: str, tmp_path: Path
) -> None:
    user_id, clerk_user_id = busiest_user(seeded)
    expected = user_row_ids(seeded, user_id)
    assert all(expected.values()), expected

    out = tmp_path / "export.json"
    counts = export_user(database_url, clerk_user_id, out)
    document = json.loads(out.read_text())
    assert document["clerk_user_id"] == clerk_user_id
    exported = {table: {row["id"] for row in rows} for table, rows in document["tables"].items()}
    assert exported == expected
    assert counts == {table: len(ids) for table, ids in expected.items()}
    # No other user's identity anywhere in the file.
    others = seeded.execute(
        "SELECT clerk_user_id, email FROM user_profiles WHERE id <> %s", (user_id,)
    ).fetchall()
    text = out.read_text()
    assert not [value for pair in others for value in pair if value in text]
    # Money keeps its exact digits.
    assert '"amount":' in text and str(document["tables"]["purchases"][0]["amount"]) in text


def test_a_table_added_later_is_exported(
    seeded: Connection, database_url: str, tmp_path: Path
) -> None:
    seeded.execute(
        "CREATE TABLE wishlists (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
        " owner uuid NOT NULL REFERENCES user_profiles (id), name text NOT NULL)"
    )
    seeded.execute(
        "CREATE TABLE wishlist_notes (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
        " wishlist_id uuid NOT NULL REFERENCES wishlists (id), note text NOT NULL)"
    )
    seeded.execute(
        "INSERT INTO wishlists (owner, name) SELECT id, 'list of ' || email FROM user_profiles"
    )
    seeded.execute("INSERT INTO wishlist_notes (wishlist_id, note) SELECT id, name FROM wishlists")
    seeded.commit()
    user_id, clerk_user_id = busiest_user(seeded)
    email = seeded.execute("SELECT email FROM user_profiles WHERE id = %s", (user_id,)).fetchone()
    assert email is not None

    out = tmp_path / "export.json"
    export_user(database_url, clerk_user_id, out)
    tables = json.loads(out.read_text())["tables"]
    assert [row["name"] for row in tables["wishlists"]] == [f"list of {email[0]}"]
    assert [row["note"] for row in tables["wishlist_notes"]] == [f"list of {email[0]}"]

    # Erasure refuses a table that holds the user's rows with no declared personal columns.
    with pytest.raises(ConflictError, match="wishlists"):
        erase_user(database_url, clerk_user_id)


def billing(connection: Connection) -> tuple[Any, ...]:
    row = connection.execute(
        "SELECT (SELECT count(*) FROM user_subscriptions), (SELECT sum(amount) FROM user_subscriptions),"
        " (SELECT count(*) FROM purchases), (SELECT sum(amount) FROM purchases)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_erase_leaves_no_personal_field_and_keeps_billing(
    seeded: Connection, database_url: str, tmp_path: Path
) -> None:
    user_id, clerk_user_id = busiest_user(seeded)
    seeded.execute(
        "UPDATE user_activity_log SET ip_address = '192.0.2.44', user_agent = 'Firefox/142',"
        ' details = \'{"email": "secret@example.com"}\' WHERE user_id = %s',
        (user_id,),
    )
    seeded.commit()
    owned = user_row_ids(seeded, user_id)
    profile = seeded.execute(
        "SELECT email, clerk_user_id, stripe_customer_id FROM user_profiles WHERE id = %s",
        (user_id,),
    ).fetchone()
    assert profile is not None
    totals = billing(seeded)
    other_users = seeded.execute(
        "SELECT email, display_name FROM user_profiles WHERE id <> %s ORDER BY id", (user_id,)
    ).fetchall()

    erasure = erase_user(database_url, clerk_user_id)
    assert erasure.user_id == user_id

    with psycopg.connect(database_url) as connection:
        for table_name, ids in owned.items():
            table = Base.metadata.tables[table_name]
            for column in personal_columns(table):
                replacement = column.info.get("erased")
                values = connection.execute(
                    sql.SQL("SELECT {}, {} FROM {} WHERE id::text = ANY(%s)").format(
                        sql.Identifier(column.name),
                        sql.SQL(replacement) if replacement else sql.SQL("NULL"),
                        sql.Identifier(table_name),
                    ),
                    (list(ids),),
                ).fetchall()
                assert values and all(value == wanted for value, wanted in values), (
                    table_name,
                    column.name,
                )
        assert billing(connection) == totals
        assert (
            connection.execute(
                "SELECT email, display_name FROM user_profiles WHERE id <> %s ORDER BY id",
                (user_id,),
            ).fetchall()
            == other_users
        )
        logged = connection.execute(
            "SELECT actor, entity_id FROM user_activity_log WHERE user_id = %s AND action = %s",
            (user_id, ERASED_ACTION),
        ).fetchall()
        assert logged == [("afilo-db erase", str(user_id))]

    # Nothing identifying is left anywhere in the database.
    export_tables(database_url, "jsonl", tmp_path / "everything")
    everything = "".join(path.read_text() for path in (tmp_path / "everything").iterdir())
    for value in (*profile, "192.0.2.44", "Firefox/142", "secret@example.com"):
        assert value is not None and value not in everything
    with pytest.raises(NotFoundError):
        erase_user(database_url, clerk_user_id)


def test_export_tables(seeded: Connection, database_url: str, tmp_path: Path) -> None:
    counts = export_tables(database_url, "csv", tmp_path / "csv")
    products = (tmp_path / "csv" / "products.csv").read_text().splitlines()
    assert products[0].startswith("id,handle,title")
    assert counts["products"] == 80
    counts = export_tables(database_url, "jsonl", tmp_path / "jsonl")
    lines = (tmp_path / "jsonl" / "knowledge_base.jsonl").read_text().splitlines()
    assert len(lines) == counts["knowledge_base"] > 0
    row = json.loads(lines[0])
    stored = seeded.execute(
        "SELECT content FROM knowledge_base WHERE id = %s", (row["id"],)
    ).fetchone()
    assert stored is not None and row["content"] == stored[0]
    events = (tmp_path / "jsonl" / "events.jsonl").read_text().splitlines()
    assert len(events) == counts["events"] > 0


def test_export_refuses_an_out_path_whose_folder_does_not_exist(
    database_url: str, tmp_path: Path
) -> None:
    """A mistyped --out is named, not created: nothing appears anywhere."""
    missing = tmp_path / "exprots" / "2026"
    with pytest.raises(ValidationError) as caught:
        export_user(database_url, "user_nobody000001", missing / "user.json")
    assert "does not exist" in caught.value.problems["out"]
    with pytest.raises(ValidationError):
        export_tables(database_url, "csv", missing / "tables")
    assert list(tmp_path.iterdir()) == []
