"""Point-in-time recovery for the embedded (self-hosted) server: WAL archiving plus base backups.

`enable` makes the server copy every finished WAL segment into `$AFILO_HOME/wal` and takes a base
backup (pg_basebackup) into `$AFILO_HOME/basebackups/<id>/`. Recovering to a moment T copies the
newest base backup that finished before T and replays the archived WAL up to T
(recovery.signal, restore_command, recovery_target_time), then promotes: either a separate server
in a directory of its own, started on a free port for inspection, or the server itself.
On Neon none of this is needed: its storage keeps the history and restores or branches to a time.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from pydantic import BaseModel

from afilo_db.backups.manifest import BACKUP_ID_FORMAT
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.programs import Progress, no_progress, run_pg_program, run_program
from afilo_db.errors import ConflictError, NotFoundError, OperationError, ValidationError
from afilo_db.rules import sql_literal

WAL_ARCHIVE = "wal"
BASE_BACKUPS = "basebackups"
BASE_BACKUP_FILE = "base_backup.json"
# Without traffic a WAL segment may stay unfinished, hence unarchived, for long: force one out
# at least this often, which bounds how much of the recent past a recovery can lose.
ARCHIVE_TIMEOUT = "60s"
RECOVERY_TIMEOUT_SECONDS = 600
# Recovery settings that only mean something during the one recovery that uses them.
RECOVERY_TARGET_SETTINGS = (
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_action",
)


class BaseBackup(BaseModel):
    id: str
    started_at: datetime
    finished_at: datetime
    """Server clock after pg_basebackup returned: recovery can reach any moment after it."""
    server_version: str
    size_bytes: int


@dataclass(frozen=True)
class ArchiveStatus:
    enabled: bool
    archive_command: str
    archived_count: int
    last_archived_wal: str | None
    last_archived_at: datetime | None
    failed_count: int
    last_failed_wal: str | None
    base_backups: list[BaseBackup]


@dataclass(frozen=True)
class RecoveredServer:
    home: Path
    url: str
    base_backup_id: str
    target_time: datetime
    replaced_data_directory: Path | None = None
    """In place: where the data directory that was replaced now lies."""


def wal_archive_directory(server: EmbeddedServer) -> Path:
    return server.home / WAL_ARCHIVE


def base_backups_directory(server: EmbeddedServer) -> Path:
    return server.home / BASE_BACKUPS


def archive_command(server: EmbeddedServer) -> str:
    # Never overwrite an archived segment: a second server archiving into the same place must fail
    # loudly rather than replace history. As PostgreSQL's basic_archive does: copy under a
    # temporary name, fsync it, rename it into place, fsync the directory; a power cut leaves
    # either no segment (archived again after the restart) or a whole one, never a torn one.
    archive = shlex.quote(str(wal_archive_directory(server)))
    partial = f"{archive}/.%f.partial"
    return (
        f"test ! -f {archive}/%f && cp %p {partial} && sync {partial}"
        f" && mv {partial} {archive}/%f && sync {archive}"
    )


def _settings(connection: psycopg.Connection[Any], *names: str) -> dict[str, str]:
    rows = connection.execute(
        "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(names),)
    )
    return {str(name): str(setting) for name, setting in rows}


def enable(server: EmbeddedServer, *, progress: Progress = no_progress) -> BaseBackup:
    """Turn on WAL archiving into $AFILO_HOME/wal (restarting the server if it has to) and take a
    first base backup."""
    server.start()
    archive = wal_archive_directory(server)
    archive.mkdir(parents=True, exist_ok=True)
    server.hand_over(archive)
    progress("enabling WAL archiving", 0, 1)
    with psycopg.connect(server.url(), autocommit=True) as connection:
        current = _settings(connection, "archive_mode", "wal_level")
        connection.execute("ALTER SYSTEM SET archive_mode = 'on'")
        if current.get("wal_level") == "minimal":
            connection.execute("ALTER SYSTEM SET wal_level = 'replica'")
        # ALTER SYSTEM takes no parameters; the values are quoted as literals.
        connection.execute(
            psycopg.sql.SQL("ALTER SYSTEM SET archive_command = {}").format(
                psycopg.sql.Literal(archive_command(server))
            )
        )
        connection.execute(
            psycopg.sql.SQL("ALTER SYSTEM SET archive_timeout = {}").format(
                psycopg.sql.Literal(ARCHIVE_TIMEOUT)
            )
        )
        connection.execute("SELECT pg_reload_conf()")
    if current.get("archive_mode") != "on" or current.get("wal_level") == "minimal":
        server.restart()
    progress("enabling WAL archiving", 1, 1)
    return take_base_backup(server, progress=progress)


def archive_status(server: EmbeddedServer) -> ArchiveStatus:
    with psycopg.connect(server.url(), autocommit=True) as connection:
        settings = _settings(connection, "archive_mode", "archive_command")
        row = connection.execute(
            "SELECT archived_count, last_archived_wal, last_archived_time, failed_count,"
            " last_failed_wal FROM pg_stat_archiver"
        ).fetchone()
    assert row is not None
    return ArchiveStatus(
        enabled=settings.get("archive_mode") == "on",
        archive_command=settings.get("archive_command", ""),
        archived_count=int(row[0]),
        last_archived_wal=row[1],
        last_archived_at=row[2],
        failed_count=int(row[3]),
        last_failed_wal=row[4],
        base_backups=list_base_backups(server),
    )


def archive_current_wal(server: EmbeddedServer, timeout: float = 60) -> str:
    """Close the current WAL segment and wait until it is archived, so that everything committed
    so far can be recovered; the segment's name."""
    with psycopg.connect(server.url(), autocommit=True) as connection:
        # A switch with no WAL written since the last one does nothing and the current segment
        # would never be archived: write a record first, so the switch always closes a segment.
        # A transactional one, so that it commits: recovery to a time T stops at the first commit
        # after T, and with none after it fails ("ended before the target was reached").
        connection.execute("SELECT pg_logical_emit_message(true, 'afilo-db', 'archive now')")
        row = connection.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        assert row is not None
        segment = str(row[0])
        deadline = time.monotonic() + timeout
        while True:
            state = connection.execute(
                "SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver"
            ).fetchone()
            assert state is not None
            if state[0] is not None and str(state[0]) >= segment:
                return segment
            if time.monotonic() > deadline:
                failed = f" (last failure: {state[1]})" if state[1] else ""
                raise OperationError(
                    f"WAL segment {segment} was not archived within {timeout:.0f}s{failed}; "
                    f"see {server.log_file}"
                )
            time.sleep(0.2)


def _require_archiving(server: EmbeddedServer) -> None:
    with psycopg.connect(server.url(), autocommit=True) as connection:
        if _settings(connection, "archive_mode").get("archive_mode") != "on":
            raise ConflictError("WAL archiving is off: run `afilo-db pitr enable` first")


def _server_now(server: EmbeddedServer) -> datetime:
    with psycopg.connect(server.url(), autocommit=True) as connection:
        row = connection.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    moment: datetime = row[0]
    return moment


def take_base_backup(server: EmbeddedServer, *, progress: Progress = no_progress) -> BaseBackup:
    """A physical copy of the whole cluster (pg_basebackup), the starting point of a recovery."""
    server.start()
    _require_archiving(server)
    root = base_backups_directory(server)
    root.mkdir(parents=True, exist_ok=True)
    backup_id = datetime.now(UTC).strftime(BACKUP_ID_FORMAT)
    folder = root / backup_id
    folder.mkdir()
    progress("base backup", 0, 1)
    try:
        started_at = _server_now(server)
        run_program(
            "pg_basebackup", server.url(), f"--pgdata={folder / 'data'}", "--format=plain",
            "--wal-method=stream", "--checkpoint=fast",
        )  # fmt: skip
        finished_at = _server_now(server)
        with psycopg.connect(server.url(), autocommit=True) as connection:
            version = _settings(connection, "server_version")["server_version"]
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    backup = BaseBackup(
        id=backup_id,
        started_at=started_at,
        finished_at=finished_at,
        server_version=version,
        size_bytes=sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()),
    )
    (folder / BASE_BACKUP_FILE).write_text(backup.model_dump_json(indent=2))
    progress("base backup", 1, 1)
    return backup


def list_base_backups(server: EmbeddedServer) -> list[BaseBackup]:
    """Every complete base backup, newest first."""
    root = base_backups_directory(server)
    if not root.is_dir():
        return []
    backups = [
        BaseBackup.model_validate_json((folder / BASE_BACKUP_FILE).read_text())
        for folder in root.iterdir()
        if (folder / BASE_BACKUP_FILE).is_file()
    ]
    return sorted(backups, key=lambda backup: backup.id, reverse=True)


@dataclass(frozen=True)
class PrunePlan:
    kept: list[str]
    deleted: list[str]
    """Base backups removed (or, on a dry run, that would be)."""
    oldest_kept_segment: str | None
    """WAL older than this segment is removed: no kept base backup can replay it."""


_START_SEGMENT = re.compile(r"START WAL LOCATION: \S+ \(file (?P<segment>[0-9A-F]{24})\)")


def _start_segment(server: EmbeddedServer, base: BaseBackup) -> str:
    """The first WAL segment a recovery from `base` reads (its backup_label says so)."""
    label = base_backups_directory(server) / base.id / "data" / "backup_label"
    match = _START_SEGMENT.search(label.read_text())
    if match is None:
        raise OperationError(f"{label} names no start WAL segment")
    return match["segment"]


def prune(
    server: EmbeddedServer,
    *,
    keep_last: int,
    keep_days: float | None = None,
    dry_run: bool = False,
) -> PrunePlan:
    """Delete base backups beyond the `keep_last` newest (and older than `keep_days`, if given),
    then the archived WAL older than the oldest base backup kept: what no recovery can use."""
    if keep_last < 1:
        raise ValidationError({"keep_last": "keep at least the newest base backup (1 or more)"})
    backups = list_base_backups(server)
    now = datetime.now(UTC)
    kept = [
        backup
        for position, backup in enumerate(backups)
        if position < keep_last
        or (keep_days is not None and now - backup.finished_at < timedelta(days=keep_days))
    ]
    deleted = [backup for backup in backups if backup not in kept]
    oldest_segment = _start_segment(server, kept[-1]) if kept else None
    if not dry_run:
        for backup in deleted:
            shutil.rmtree(base_backups_directory(server) / backup.id)
        if oldest_segment is not None:
            run_pg_program("pg_archivecleanup", str(wal_archive_directory(server)), oldest_segment)
    return PrunePlan([b.id for b in kept], [b.id for b in deleted], oldest_segment)


def parse_target_time(text: str) -> datetime:
    """'2026-11-24 10:15:00+00' and other ISO 8601 forms, with a time zone (no guessing)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValidationError(
            {"to_time": "an ISO 8601 time with a zone, e.g. '2026-11-24 10:15:00+00'"}
        ) from exc
    if moment.tzinfo is None:
        raise ValidationError({"to_time": "needs a time zone, e.g. '2026-11-24 10:15:00+00'"})
    return moment


def _latest_recoverable_moment(server: EmbeddedServer) -> datetime | None:
    """How far the archive reaches: after archiving the current segment of a running server, its
    clock; for a stopped one, when the newest archived segment was written."""
    if server.status().running:
        archive_current_wal(server)
        return _server_now(server)
    segments = [path for path in wal_archive_directory(server).glob("[0-9A-F]" * 24)]
    if not segments:
        return None
    newest = max(path.stat().st_mtime for path in segments)
    return datetime.fromtimestamp(newest, UTC)


def _recovery_plan(server: EmbeddedServer, target: datetime) -> BaseBackup:
    """The base backup to recover `target` from, once the archive is known to reach `target`:
    checked before anything is copied or stopped (recovery towards a moment the archive does not
    reach replays everything, then fails)."""
    reach = _latest_recoverable_moment(server)
    if reach is None or target > reach:
        known = f"; the archive reaches {reach.isoformat()}" if reach else "; the archive is empty"
        raise ValidationError(
            {"to_time": f"{target.isoformat()} is beyond the archived WAL{known}"}
        )
    return _base_backup_before(server, target)


def _base_backup_before(server: EmbeddedServer, target: datetime) -> BaseBackup:
    backups = list_base_backups(server)
    usable = [backup for backup in backups if backup.finished_at < target]
    if not usable:
        oldest = (
            f"; the oldest finished at {backups[-1].finished_at.isoformat()}" if backups else ""
        )
        raise NotFoundError(f"no base backup finished before {target.isoformat()}{oldest}")
    return usable[0]


_CHECKPOINT_TIMELINE = re.compile(r"^Latest checkpoint's TimeLineID:\s+(?P<timeline>\d+)$", re.M)


def _current_timeline(server: EmbeddedServer) -> int:
    """The timeline the server lives on. Recovery follows its history, not the newest timeline in
    the archive: an abandoned recovery (one that failed and was put back) leaves a timeline there
    that forks off the server's real past, and following it would replay the wrong history."""
    if server.status().running:
        with psycopg.connect(server.url(), autocommit=True) as connection:
            row = connection.execute(
                "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
            ).fetchone()
        assert row is not None
        return int(str(row[0]), 16)
    control = run_pg_program("pg_controldata", "-D", str(server.data_directory))
    match = _CHECKPOINT_TIMELINE.search(control)
    if match is None:
        raise OperationError(f"pg_controldata names no timeline for {server.data_directory}")
    return int(match["timeline"])


def _prepare_recovery(
    source: EmbeddedServer,
    base: BaseBackup,
    data_directory: Path,
    target: datetime,
    *,
    timeline: int,
    archive: bool,
) -> None:
    shutil.copytree(base_backups_directory(source) / base.id / "data", data_directory)
    archive_directory = shlex.quote(str(wal_archive_directory(source)))
    settings = {
        "restore_command": f"cp {archive_directory}/%f %p",
        "recovery_target_time": target.isoformat(),
        "recovery_target_timeline": str(timeline),
        "recovery_target_action": "promote",
    }
    if not archive:
        # A copy for inspection must not write its own timeline into the source's archive.
        settings["archive_mode"] = "off"
    with (data_directory / "postgresql.auto.conf").open("a") as conf:
        conf.write("# point-in-time recovery by afilo-db\n")
        for name, value in settings.items():
            conf.write(f"{name} = {sql_literal(value)}\n")
    (data_directory / "recovery.signal").touch()


def _wait_until_promoted(server: EmbeddedServer) -> None:
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not server.status().running:
            tail = "\n".join(server.log_file.read_text(errors="replace").splitlines()[-10:])
            raise OperationError(f"recovery failed; server log ({server.log_file}):\n{tail}")
        with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
            row = connection.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and not row[0]:
                for name in RECOVERY_TARGET_SETTINGS:
                    connection.execute(psycopg.sql.SQL("ALTER SYSTEM RESET {}").format(
                        psycopg.sql.Identifier(name)
                    ))  # fmt: skip
                return
        time.sleep(0.5)
    raise OperationError(f"recovery did not finish within {RECOVERY_TIMEOUT_SECONDS}s")


def recover_to_directory(
    server: EmbeddedServer,
    target: datetime,
    into: Path,
    *,
    progress: Progress = no_progress,
) -> RecoveredServer:
    """Recover the state of `server` at `target` as a separate server whose home is `into`."""
    if into.exists() and any(into.iterdir()):
        raise ConflictError(f"{into} is not empty; recover into a new directory")
    base = _recovery_plan(server, target)
    timeline = _current_timeline(server)
    recovered = EmbeddedServer(into.resolve())
    progress("copying the base backup", 0, 2)
    into.mkdir(parents=True, exist_ok=True)
    try:
        _prepare_recovery(
            server, base, recovered.data_directory, target, timeline=timeline, archive=False
        )
        recovered.adopt(server.password)
        progress("replaying WAL", 1, 2)
        recovered.start()
        _wait_until_promoted(recovered)
    except BaseException:
        # Nothing of a failed recovery stays behind to block the next attempt.
        recovered.destroy()
        raise
    progress("replaying WAL", 2, 2)
    return RecoveredServer(
        home=recovered.home, url=recovered.url(), base_backup_id=base.id, target_time=target
    )


def _put_back(server: EmbeddedServer, aside: Path, *, restart: bool) -> None:
    """Undo a failed in-place recovery: the data directory kept aside becomes the server's again."""
    with contextlib.suppress(OperationError):
        server.stop()
    shutil.rmtree(server.data_directory, ignore_errors=True)
    aside.rename(server.data_directory)
    if restart:
        server.start()


def recover_in_place(
    server: EmbeddedServer, target: datetime, *, progress: Progress = no_progress
) -> RecoveredServer:
    """Take `server` back to its state at `target`. Its current data directory is kept aside, and
    put back (the server restarted as it was) if anything fails after that."""
    base = _recovery_plan(server, target)
    timeline = _current_timeline(server)
    progress("copying the base backup", 0, 2)
    was_running = server.status().running
    server.stop()
    stamp = datetime.now(UTC).strftime(BACKUP_ID_FORMAT)
    aside = server.home / f"pgdata.before-recovery-{stamp}"
    server.data_directory.rename(aside)
    try:
        # Archiving goes on: the recovered server starts a new timeline in the same archive.
        _prepare_recovery(
            server, base, server.data_directory, target, timeline=timeline, archive=True
        )
        server.hand_over(server.data_directory)
        progress("replaying WAL", 1, 2)
        server.start()
        _wait_until_promoted(server)
    except BaseException:
        _put_back(server, aside, restart=was_running)
        raise
    progress("replaying WAL", 2, 2)
    return RecoveredServer(
        home=server.home,
        url=server.url(),
        base_backup_id=base.id,
        target_time=target,
        replaced_data_directory=aside,
    )
