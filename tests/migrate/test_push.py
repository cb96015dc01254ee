"""`db push`: the database made to match the models without a revision; data loss refused."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import Column, MetaData, Text

from afilo_db.data.seed import seed
from afilo_db.errors import ConflictError
from afilo_db.knowledge.embedders import get_embedder
from afilo_db.migrate import revisions
from afilo_db.migrate.push import push
from afilo_db.models import Base
from tests.conftest import vectors_shared_by_the_run


def models_without_description() -> MetaData:
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    products = metadata.tables["products"]
    products._columns.remove(products.c.description)  # the developer deleted the attribute
    # ... and the rule on it (dropping the column drops its CHECK)
    description_rules = [c for c in products.constraints if "description" in str(c.name)]
    for rule in description_rules:
        products.constraints.remove(rule)
    return metadata


def product_count(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM products").fetchone()
    return int(row[0]) if row else 0


def test_push_adds_what_the_models_gained(database_url: str) -> None:
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    metadata.tables["products"].append_column(Column("subtitle", Text))
    result = push(database_url, metadata=metadata)
    assert result.changes == ["ALTER TABLE products ADD COLUMN subtitle TEXT;"]
    assert revisions.model_differences(database_url, metadata) == []
    assert push(database_url, metadata=metadata).changes == []


def test_push_refuses_to_drop_a_column_holding_data_with_the_row_count(database_url: str) -> None:
    with vectors_shared_by_the_run(get_embedder()), psycopg.connect(database_url) as connection:
        seed(connection, products=7)
        connection.commit()
    models = models_without_description()
    with pytest.raises(ConflictError, match=r"dropping products\.description loses 7 values"):
        push(database_url, metadata=models)
    assert revisions.model_differences(database_url, models) != []  # nothing was changed

    result = push(database_url, accept_data_loss=True, metadata=models)
    assert [loss.rule for loss in result.accepted_losses] == ["data-loss"]
    assert revisions.model_differences(database_url, models) == []


def test_force_reset_drops_everything_and_recreates_the_schema(database_url: str) -> None:
    with vectors_shared_by_the_run(get_embedder()), psycopg.connect(database_url) as connection:
        seed(connection, products=3)
        connection.commit()
    result = push(database_url, force_reset=True)
    assert result.reset and result.changes == []
    assert product_count(database_url) == 0
    assert revisions.current_revision(database_url) == revisions.head_revision()
