"""Every failure a user can meet, in one line that says what to do, with the README's exit code.

`explain(error)` turns anything a command raised into an `AfiloError`: the project's own errors
as they are; psycopg's by SQLSTATE (or, for a connection that never opened, by libpq's message);
SQLAlchemy's and Alembic's through what they wrap; the operating system's by errno; settings by
the setting's name. Libraries are looked up in `sys.modules` only: an error cannot come from a
library that was never imported, and importing one to classify an error would slow every failure.
"""

from __future__ import annotations

import errno
import re
import sys
from typing import Any

from afilo_db.errors import (
    AfiloError,
    ConflictError,
    ForbiddenError,
    InterruptedByUserError,
    NotFoundError,
    OperationError,
    UnavailableError,
    ValidationError,
)

_SERVER = re.compile(
    r'connection to server (?:at "(?P<host>[^"]+)"(?: \([^)]*\))?, port (?P<port>\d+)|on socket "(?P<socket>[^"]+)")'
)
_URL = "DATABASE_URL (or DIRECT_URL)"
_CHECK_URL = f"check {_URL}, or unset it to use the embedded server"
# Quoted parts of libpq's messages are names (hosts, databases, users): a host called
# "ssl-primary" must not read as a TLS failure.
_QUOTED = re.compile(r'"[^"]*"')
_NOT_MIGRATED = "database not migrated: run `afilo-db up` (or `migrate deploy`) ({reason})"

# libpq reports a connection that never opened without an SQLSTATE: recognised by its words.
_CONNECTION_MESSAGES: tuple[tuple[tuple[str, ...], type[AfiloError], str], ...] = (
    (
        ("password authentication failed", "no password supplied", "pg_hba.conf"),
        ForbiddenError,
        "the database refused the login ({reason}): check the user and password in {url}",
    ),
    (
        (
            "could not translate host name",
            "name or service not known",
            "name resolution",
            "nodename nor servname",
        ),
        UnavailableError,
        "the database host name could not be resolved ({reason}): check the host in {url}",
    ),
    (
        ("ssl", "certificate", "tls"),
        UnavailableError,
        "the TLS connection to the database failed ({reason}): check sslmode and sslrootcert "
        "in {url}",
    ),
    (
        ("timeout expired", "timed out"),
        UnavailableError,
        "the database did not answer in time ({reason}): is the host reachable from here? {check}",
    ),
    (
        ("connection refused", "no such file or directory", "could not connect"),
        UnavailableError,
        "nothing accepts connections {where} ({reason}): start the server "
        "(`afilo-db db start`) or {check}",
    ),
    (
        (
            "server closed the connection",
            "connection is lost",
            "terminating connection",
            "consuming input failed",
            "connection is closed",
            "the connection is bad",
        ),
        UnavailableError,
        "the connection to the database was lost during the command ({reason}): the server "
        "stopped or restarted; start it and run the command again (what it wrote was rolled back)",
    ),
    (
        ("does not exist",),
        NotFoundError,
        "{reason}: create it first or check the database name in {url}",
    ),
)

_SQLSTATE_CLASSES: dict[str, tuple[type[AfiloError], str]] = {
    "08": (UnavailableError, "the connection to the database failed ({reason}): run it again"),
    "28": (
        ForbiddenError,
        "the database refused the login ({reason}): check the user and password",
    ),
    "23": (ConflictError, "{reason}"),
}

_SQLSTATES: dict[str, tuple[type[AfiloError], str]] = {
    "40001": (
        ConflictError,
        "another transaction changed the same rows at the same time (serialization failure): "
        "nothing was written; run the command again",
    ),
    "40P01": (
        ConflictError,
        "deadlock with another transaction on the same rows: nothing was written; run the "
        "command again",
    ),
    "55P03": (
        ConflictError,
        "another session holds a lock this command needs ({reason}): nothing was written; run "
        "it again when that session is done",
    ),
    "57014": (
        OperationError,
        "a statement was cancelled ({reason}): it ran past its statement timeout or was "
        "cancelled by an operator",
    ),
    "57P01": (
        UnavailableError,
        "the database server shut down during the command ({reason}): start it and run the "
        "command again (what it wrote was rolled back)",
    ),
    "57P02": (
        UnavailableError,
        "the database server crashed during the command ({reason}): start it and run the "
        "command again (what it wrote was rolled back)",
    ),
    "57P03": (
        UnavailableError,
        "the database server is starting or shutting down ({reason}): wait and run it again",
    ),
    "42501": (
        ForbiddenError,
        "the database role lacks a privilege ({reason}): connect as the owner (DIRECT_URL)",
    ),
    "3D000": (NotFoundError, "{reason}: check the database name in the URL"),
    "53100": (
        OperationError,
        "the database server's disk is full ({reason}): free some space; nothing was written",
    ),
    "53200": (OperationError, "the database server ran out of memory ({reason})"),
    "53300": (
        UnavailableError,
        "the database server accepts no more connections ({reason}): close some or raise "
        "max_connections",
    ),
}

_OS_ERRORS: dict[int, tuple[type[AfiloError], str]] = {
    errno.ENOSPC: (
        OperationError,
        "no space left on the device holding {path}: free some space or choose another "
        "place (AFILO_HOME, --dir, --out); nothing half-written was kept",
    ),
    errno.EDQUOT: (OperationError, "disk quota exceeded writing {path}: free some space"),
    errno.EACCES: (
        ForbiddenError,
        "permission denied on {path}: choose a place you may write (AFILO_HOME, --dir, --out) "
        "or fix its permissions",
    ),
    errno.EPERM: (ForbiddenError, "operation not permitted on {path}: check its owner"),
    errno.EROFS: (
        ForbiddenError,
        "{path} is on a read-only file system: choose a writable AFILO_HOME, --dir or --out",
    ),
    errno.ENOENT: (NotFoundError, "no such file or directory: {path}"),
    errno.EADDRINUSE: (ConflictError, "the address is already in use: {reason}"),
}


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _loaded(module: str) -> Any:
    return sys.modules.get(module)


def _where(message: str) -> str:
    match = _SERVER.search(message)
    if match is None:
        return "at the configured address"
    if match["socket"]:
        return f"on socket {match['socket']}"
    return f"at {match['host']}:{match['port']}"


def _libpq_reason(message: str) -> str:
    """libpq's own words without its 'connection to server at ... failed:' preamble."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    reason = lines[0] if lines else message
    for prefix in ("connection failed:",):
        reason = reason.removeprefix(prefix).strip()
    reason = re.sub(r"^connection to server [^:]*failed:\s*", "", reason)
    return reason.removeprefix("FATAL:").strip() or "no detail"


def _from_psycopg(error: Any) -> AfiloError | None:
    psycopg = _loaded("psycopg")
    if psycopg is None or not isinstance(error, psycopg.Error):
        return None
    message = str(error)
    reason = _libpq_reason(message)
    sqlstate = str(getattr(error, "sqlstate", None) or "")
    if sqlstate.startswith("23") or sqlstate == "P0001":
        from afilo_db.validation.database_errors import translate

        translated = translate(error)
        if translated is not None:
            return translated
    if sqlstate in _SQLSTATES:
        kind, template = _SQLSTATES[sqlstate]
        return kind(template.format(reason=reason))
    if sqlstate[:2] in _SQLSTATE_CLASSES:
        kind, template = _SQLSTATE_CLASSES[sqlstate[:2]]
        return kind(template.format(reason=reason))
    if sqlstate in ("42P01", "42883"):  # undefined table or function: the schema is missing
        return OperationError(_NOT_MIGRATED.format(reason=reason))
    if not sqlstate or isinstance(error, psycopg.OperationalError):
        lowered = _QUOTED.sub('""', message).lower()
        for words, kind, template in _CONNECTION_MESSAGES:
            if any(word in lowered for word in words):
                return kind(
                    template.format(
                        reason=reason, where=_where(message), url=_URL, check=_CHECK_URL
                    )
                )
    if isinstance(error, psycopg.OperationalError):
        return UnavailableError(f"the database connection failed ({reason}): {_CHECK_URL}")
    state = f" (SQLSTATE {sqlstate})" if sqlstate else ""
    return OperationError(f"the database refused a statement{state}: {reason}")


def _from_os(error: OSError) -> AfiloError:
    path = error.filename if error.filename is not None else "a file"
    reason = error.strerror or str(error)
    if error.errno in _OS_ERRORS:
        kind, template = _OS_ERRORS[error.errno]
        return kind(template.format(path=path, reason=reason))
    return OperationError(f"{reason}: {path}")


def _from_library(error: BaseException) -> AfiloError | None:
    """What SQLAlchemy, Alembic and pydantic raise, in words."""
    sqlalchemy_exc = _loaded("sqlalchemy.exc")
    if sqlalchemy_exc is not None:
        if isinstance(error, sqlalchemy_exc.TimeoutError):
            return UnavailableError(
                f"no free database connection in time ({first_line(str(error))}): raise "
                "DB_POOL_SIZE or DB_POOL_TIMEOUT_SECONDS"
            )
        if isinstance(error, sqlalchemy_exc.ArgumentError):
            return ValidationError({"url": f"not a valid database URL ({first_line(str(error))})"})
    alembic_exc = _loaded("alembic.util.exc")
    if alembic_exc is not None and isinstance(error, alembic_exc.CommandError):
        return OperationError(f"migration: {first_line(str(error))}")
    pydantic = _loaded("pydantic")
    if pydantic is not None and isinstance(error, pydantic.ValidationError):
        problems = {
            ".".join(str(part) for part in problem["loc"]).upper() or "value": problem["msg"]
            for problem in error.errors()
        }
        return ValidationError(problems)
    return None


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what it wraps (SQLAlchemy's `.orig`, `raise ... from`), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return chain


def explain(error: BaseException) -> AfiloError:
    """The error a user should see for `error`: kind (exit code) and one line of words."""
    if isinstance(error, AfiloError):
        return error
    if isinstance(error, KeyboardInterrupt):
        return InterruptedByUserError("interrupted; nothing half-done was kept")
    for cause in _causes(error):
        known = _from_psycopg(cause) or _from_library(cause)
        if known is not None:
            return known
        if isinstance(cause, OSError):
            return _from_os(cause)
    if isinstance(error, UnicodeDecodeError):
        return ValidationError(
            {"file": f"is not valid UTF-8 ({error.reason} at byte {error.start})"}
        )
    if isinstance(error, RecursionError):
        return ValidationError({"input": "is nested too deeply"})
    if isinstance(error, ValueError):
        return ValidationError({"value": first_line(str(error)) or type(error).__name__})
    return OperationError(
        f"unexpected {type(error).__name__}: {first_line(str(error)) or 'no detail'} "
        "(run again with --debug for the traceback, and report it)"
    )
