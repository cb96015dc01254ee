"""Transactions: the caller owns them. `unit_of_work` commits on success and rolls back on any
error, turning constraint violations into afilo errors on the way out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from afilo_db.db.engine import get_engine
from afilo_db.validation.database_errors import translate


@contextmanager
def translated_errors() -> Iterator[None]:
    """Raise constraint violations as afilo errors (ValidationError, ConflictError, ...), from
    SQLAlchemy or from a psycopg connection used directly."""
    try:
        yield
    except (DBAPIError, psycopg.Error) as error:
        translated = translate(error)
        if translated is None:
            raise
        raise translated from error


def flush(session: Session) -> None:
    """Send pending changes now, so that a violation names itself here and not at commit."""
    with translated_errors():
        session.flush()


@contextmanager
def unit_of_work(engine: Engine | None = None) -> Iterator[Session]:
    """A session whose work commits together when the block ends, or not at all."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            with translated_errors():
                yield session
                # Nothing begun (only hot reads, which run on their own): nothing to commit,
                # and SQLAlchemy's commit of an empty transaction is not free.
                if session.in_transaction():
                    session.commit()
        except BaseException:
            session.rollback()
            raise
