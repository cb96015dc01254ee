"""The one error family afilo-db raises. The CLI turns each into an exit code, the studio into a
form error; nobody downstream needs to know about psycopg or SQLAlchemy exceptions.

Exit codes of `afilo-db` (the README lists them): 1 the operation failed, 2 invalid input,
3 not found, 4 conflict (including a deadlock or serialization failure: run it again),
5 forbidden (a login or permission refused), 6 the database is unreachable (refused, unknown
host, TLS, timeout, connection lost), 7 the server or one of its extensions is older than
supported, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations


class AfiloError(Exception):
    """Base of every error afilo-db raises on purpose."""

    exit_code = 1


class OperationError(AfiloError):
    """An operator command could not do its work (server would not start, tool failed)."""

    exit_code = 1


class ValidationError(AfiloError):
    """Input broke a rule; `problems` maps each offending field to what it broke."""

    exit_code = 2

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {rule}" for field, rule in problems.items()))


class NotFoundError(AfiloError):
    exit_code = 3


class ConflictError(AfiloError):
    """The change contradicts what is already there (a duplicate, a non-empty database, ...)."""

    exit_code = 4


class ForbiddenError(AfiloError):
    exit_code = 5


class UnavailableError(OperationError):
    """The database could not be reached or was lost: refused, unknown host, TLS, timeout."""

    exit_code = 6


class UnsupportedServerError(AfiloError):
    """The configured PostgreSQL, or an extension on it, is below the floor (afilo_db.db.versions):
    nothing was done."""

    exit_code = 7


class InterruptedByUserError(AfiloError):
    """Ctrl-C (SIGINT): the shell's convention, 128 + the signal number."""

    exit_code = 130
