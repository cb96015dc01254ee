"""`afilo-db studio` as an operator starts it: on 127.0.0.1 only, nothing without logging in."""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.cli.invoke import in_process
from tests.studio.conftest import free_port

LOOPBACK_HEX = "0100007F"


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port` (state 0A), from the kernel's tables."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":
                found.add(address)
    return found


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_studio_listens_on_loopback_and_asks_for_the_token(database_url: str) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("AFILO_STUDIO_PASSWORD", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "afilo_db", "studio", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url_line = process.stdout.readline()
        token_line = process.stdout.readline()
        assert url_line.strip() == f"afilo-db studio: http://127.0.0.1:{port}/studio/"
        token = re.fullmatch(r"one-time login token: (\S+)\n", token_line)
        assert token is not None
        deadline = time.monotonic() + 20
        while not _listening_addresses(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _listening_addresses(port) == {LOOPBACK_HEX}

        base = f"http://127.0.0.1:{port}/studio"
        anonymous = urllib.request.build_opener(_NoRedirect)
        for path in ("/", "/products/list", "/view-as", "/user_profiles/list"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                anonymous.open(base + path)
            assert refused.value.code == 303, path
            assert refused.value.headers["location"].startswith(f"{base}/login")

        cookies = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
        login_page = browser.open(f"{base}/login").read().decode()
        csrf = re.search(r'name="csrftoken" value="([^"]+)"', login_page)
        assert csrf is not None

        def log_in(password: str) -> tuple[int, str, str]:
            form = {"username": "ops", "password": password, "csrftoken": csrf[1]}
            try:
                response = browser.open(f"{base}/login", urllib.parse.urlencode(form).encode())
            except urllib.error.HTTPError as error:
                return error.code, "", ""
            return int(response.status), response.geturl(), response.read().decode()

        assert log_in("wrong")[0] == 400
        # Logged in from the login page itself (no ?next=): straight to the dashboard.
        status, landed_on, page = log_in(token[1])
        assert (status, landed_on) == (200, f"{base}/")
        assert "Rows per table" in page
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_busy_port_is_a_conflict_before_any_token(database_url: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        env = {"DATABASE_URL": database_url, "COLUMNS": "200", "AFILO_STUDIO_PASSWORD": None}
        result = in_process(env, "studio", "--port", str(port))
    assert result.returncode == 4, result.stderr
    assert "token" not in result.stdout and result.stdout.strip() == ""
    assert result.stderr.startswith(f"error: 127.0.0.1:{port} is in use")
