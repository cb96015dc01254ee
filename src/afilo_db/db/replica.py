"""A streaming read replica of the embedded server, for the reports in development and tests (in
production a Neon read replica plays this part, through REPLICA_URL).

`start` clones the running primary with `pg_basebackup --write-recovery-conf` into
`$AFILO_HOME/replica/pgdata` (once), then runs it as an EmbeddedServer of its own: a hot standby on
its own port, 127.0.0.1 only, streaming the primary's WAL. The primary's default pg_hba allows
replication connections from 127.0.0.1 with scram; its superuser is the replication user, and
its password travels in the environment, never on a command line.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from afilo_db.config import Settings, get_settings
from afilo_db.db.embedded import DATABASE_NAME, EmbeddedServer, ServerStatus
from afilo_db.db.programs import run_program
from afilo_db.db.urls import libpq_url, make_url
from afilo_db.errors import OperationError

REPLICA_DIRECTORY = "replica"
CLONE_TIMEOUT_SECONDS = 1800
STREAMING_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class ReplicaStatus:
    server: ServerStatus
    streaming: bool
    """Its WAL receiver is connected to the primary."""
    lag_bytes: int | None
    """WAL the primary has written that the replica has not replayed yet."""
    replay_paused: bool = False
    """Replay is paused (pg_wal_replay_pause(), or asked to be): the replica receives WAL but
    falls further behind until it is resumed (pg_wal_replay_resume())."""


class EmbeddedReplica:
    def __init__(self, primary: EmbeddedServer) -> None:
        self.primary = primary
        self.server = EmbeddedServer(primary.home / REPLICA_DIRECTORY)

    @property
    def exists(self) -> bool:
        return self.server.initialized

    def start(self) -> ServerStatus:
        """Clone the primary on first use, then start the replica (a no-op when running) and
        return once its WAL receiver streams: a replica that accepts connections but has not yet
        reached the primary would answer reads from wherever its replay stopped."""
        self.primary.start()
        if not self.server.initialized:
            self._clone()
        started = self.server.start()
        self._wait_until_streaming()
        return started

    def _wait_until_streaming(self) -> None:
        deadline = time.monotonic() + STREAMING_TIMEOUT_SECONDS
        while not self.status().streaming:
            if time.monotonic() > deadline:
                raise OperationError(
                    f"the replica in {self.server.home} started but has not reached the primary"
                    f" within {STREAMING_TIMEOUT_SECONDS}s: see {self.server.log_file}"
                )
            time.sleep(0.1)

    def _clone(self) -> None:
        # A clone that did not finish is worth nothing: start it over.
        shutil.rmtree(self.server.data_directory, ignore_errors=True)
        self.server.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        run_program(
            "pg_basebackup", self.primary.url(),
            f"--pgdata={self.server.data_directory}",
            "--format=plain", "--wal-method=stream", "--checkpoint=fast",
            "--write-recovery-conf",
            timeout=CLONE_TIMEOUT_SECONDS,
        )  # fmt: skip
        if not (self.server.data_directory / "standby.signal").exists():
            raise OperationError("pg_basebackup wrote no standby.signal: the copy is no replica")
        self.server.adopt(self.primary.password)

    def stop(self) -> bool:
        """Stop the replica (its data stays, and it catches up when started again)."""
        return self.server.stop()

    def destroy(self) -> None:
        """Stop it and delete its data."""
        self.server.destroy()

    def url(self, database: str = DATABASE_NAME) -> str:
        return self.server.url(database)

    def status(self) -> ReplicaStatus:
        state = self.server.status()
        if not state.running:
            return ReplicaStatus(state, streaming=False, lag_bytes=None)
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as replica:
            streaming = _one(replica, "SELECT count(*) > 0 FROM pg_stat_wal_receiver"
                                      " WHERE status = 'streaming'")  # fmt: skip
            replayed = _one(replica, "SELECT pg_last_wal_replay_lsn()")
            # 'pause requested' counts: replay stops at the next record it reaches.
            paused = _one(replica, "SELECT pg_get_wal_replay_pause_state() <> 'not paused'")
        lag: int | None = None
        if self.primary.status().running and replayed is not None:
            with psycopg.connect(self.primary.url(), autocommit=True, connect_timeout=5) as primary:
                lag = int(_one(primary, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)",
                               (replayed,)))  # fmt: skip
        return ReplicaStatus(
            state,
            streaming=bool(streaming),
            lag_bytes=max(lag, 0) if lag is not None else None,
            replay_paused=bool(paused),
        )


def _one(connection: psycopg.Connection[Any], query: str, parameters: tuple[Any, ...] = ()) -> Any:
    row = connection.execute(query, parameters).fetchone()
    return None if row is None else row[0]


def replica_url_for(primary_url: str, settings: Settings | None = None) -> str | None:
    """REPLICA_URL, or the embedded replica of the embedded primary when it is running."""
    settings = settings or get_settings()
    if settings.replica_url:
        return libpq_url(settings.replica_url)
    if not settings.uses_embedded_server:
        return None
    replica = EmbeddedReplica(EmbeddedServer(settings.home))
    if not replica.server.status().running:
        return None
    database = make_url(libpq_url(primary_url)).database
    return replica.url(database) if database else None
