"""A PostgreSQL server that reports another version: a TCP relay in front of a real server that
rewrites the `server_version` the server announces when a connection opens (libpq's
PQserverVersion, psycopg's `connection.info.server_version`). Everything else passes unchanged,
so the code under test runs against the real server while believing it is an older one.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy.engine import make_url

_SERVER_VERSION = b"server_version\x00"
_READY_FOR_QUERY = b"Z"


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        chunk = connection.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("closed")
        chunks += chunk
    return chunks


def _copy(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _relay_startup(server: socket.socket, client: socket.socket, version: str) -> None:
    """The server's messages up to the first ReadyForQuery, with server_version replaced."""
    while True:
        header = _receive_exactly(server, 5)
        kind, length = header[:1], struct.unpack("!I", header[1:])[0]
        body = _receive_exactly(server, length - 4)
        if kind == b"S" and body.startswith(_SERVER_VERSION):
            body = _SERVER_VERSION + version.encode() + b"\x00"
            header = kind + struct.pack("!I", len(body) + 4)
        client.sendall(header + body)
        if kind == _READY_FOR_QUERY:
            return


def _serve(client: socket.socket, upstream: tuple[str, int], version: str) -> None:
    with client, socket.create_connection(upstream) as server:
        forward = threading.Thread(target=_copy, args=(client, server), daemon=True)
        forward.start()
        with suppress(ConnectionError, OSError):
            _relay_startup(server, client, version)
            _copy(server, client)
        forward.join(timeout=5)


@contextmanager
def server_reporting_version(url: str, version: str) -> Iterator[str]:
    """A URL that reaches the server of `url` through a relay announcing PostgreSQL `version`
    (TLS off: the relay reads the protocol in the clear)."""
    parsed = make_url(url)
    upstream = (str(parsed.host), int(parsed.port or 5432))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=_serve, args=(client, upstream, version), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield parsed.set(
            host="127.0.0.1",
            port=listener.getsockname()[1],
            query={**parsed.query, "sslmode": "disable", "gssencmode": "disable"},
        ).render_as_string(hide_password=False)
    finally:
        stop.set()
        acceptor.join()
        listener.close()
