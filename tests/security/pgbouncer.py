"""A real PgBouncer (the Debian package) in transaction pooling mode, started for the tests."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from afilo_db.db.embedded import LISTEN_ADDRESS, SERVER_OS_USER

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LISTEN_ADDRESS, 0))
        return int(probe.getsockname()[1])


class PgBouncer:
    """PgBouncer on a free 127.0.0.1 port in front of `server_port`, `pool_size` server
    connections per database and user (default 1, so that all clients share it transaction by
    transaction). It refuses to run as root: then it runs as the embedded server's system user."""

    def __init__(
        self,
        server_port: int,
        users: dict[str, str],
        pool_size: int = 1,
        max_client_conn: int = 50,
    ) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="afilo-pgbouncer-"))
        userlist = "".join(f'"{user}" "{password}"\n' for user, password in users.items())
        (self.directory / "userlist.txt").write_text(userlist)
        (self.directory / "userlist.txt").chmod(0o600)
        (self.directory / "pgbouncer.ini").write_text(
            f"""[databases]
* = host={LISTEN_ADDRESS} port={server_port}

[pgbouncer]
listen_addr = {LISTEN_ADDRESS}
listen_port = {self.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {self.directory / "userlist.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = {max_client_conn}
ignore_startup_parameters = extra_float_digits
logfile = {self.directory / "pgbouncer.log"}
# A client that waits this long for the server connection fails (120 s by default): a test
# holding it by mistake costs the suite half a minute, not two.
query_wait_timeout = 30
"""
        )
        self._process: subprocess.Popen[bytes] | None = None

    def _as_user(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(SERVER_OS_USER)
        for path in (self.directory, *self.directory.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def __enter__(self) -> PgBouncer:
        self._process = subprocess.Popen(  # type: ignore[call-overload]
            [PGBOUNCER, str(self.directory / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self._as_user(),
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.log()}")
            try:
                socket.create_connection((LISTEN_ADDRESS, self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen on {self.port}: {self.log()}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self._process is not None, "pgbouncer runs inside its `with` block"
        return self._process.pid

    def log(self) -> str:
        log_file = self.directory / "pgbouncer.log"
        return log_file.read_text(errors="replace") if log_file.exists() else ""

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@{LISTEN_ADDRESS}:{self.port}/{database}"
