"""The server of AFILO_TEST_DATABASE_URL standing in for the embedded one (see tests/conftest.py).

It gives the same URLs as `EmbeddedServer` (a database's, a login role's) on the external server;
it is never started, stopped or destroyed by the suite. Tests that need the embedded server's
own files or processes carry the `embedded_only` marker and are skipped against it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from afilo_db.db.embedded import DATABASE_NAME, EmbeddedServer

EXTERNAL_SERVER_VARIABLE = "AFILO_TEST_DATABASE_URL"


class ExternalServer(EmbeddedServer):
    """`url`: a superuser's URL on the external server (the suite creates databases and roles,
    and edits catalogs to fake old extensions)."""

    def __init__(self, url: str, home: Path) -> None:
        super().__init__(home)
        self._url: URL = make_url(url)

    @property
    def password(self) -> str:
        return str(self._url.password or "")

    @property
    def port(self) -> int:
        return int(self._url.port or 5432)

    def role_password(self, role: str) -> str:
        """The same in every test process: login roles belong to the whole cluster, which the
        processes share, and each sets the password it knows."""
        return hashlib.sha256(f"{self.password}:{role}".encode()).hexdigest()[:32]

    def url(self, database: str = DATABASE_NAME) -> str:
        return self._url.set(database=database).render_as_string(hide_password=False)

    def role_url(self, role: str, database: str = DATABASE_NAME) -> str:
        return self._url.set(
            username=role, password=self.role_password(role), database=database
        ).render_as_string(hide_password=False)
