"""The studio served for real (uvicorn in a thread, on a free 127.0.0.1 port) over a seeded
database of the module's own, and a headless Chromium (Debian's) to drive it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    StorageState,
    ViewportSize,
    sync_playwright,
)
from sqlalchemy import Engine

from afilo_db.db.embedded import EmbeddedServer
from afilo_db.db.engine import create_app_engine
from afilo_db.security import APP_ROLE
from afilo_db.studio import StudioOptions, create_studio
from tests.conftest import database_copy

PASSWORD = "correct horse battery staple"
LOGIN = "operator"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "studio"


@dataclass
class Studio:
    url: str
    """Base URL, ending in /studio"""
    owner_url: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def seeded_database(server: EmbeddedServer, seeded_template: str) -> Iterator[str]:
    """The demo data (`afilo-db up`'s seed), in a database of this module's own."""
    yield from database_copy(server, seeded_template, "studio")


class ServedApp:
    """uvicorn serving an app from a thread, stopped when the block ends."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")  # type: ignore[arg-type]
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the studio did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def _serve(seeded_database: str, server: EmbeddedServer, read_only: bool) -> Iterator[Studio]:
    engines: list[Engine] = [
        create_app_engine(seeded_database),
        create_app_engine(server.role_url(APP_ROLE, seeded_database.rsplit("/", 1)[-1])),
    ]
    app = create_studio(engines[0], StudioOptions(PASSWORD, read_only=read_only), engines[1])
    try:
        with ServedApp(app) as served:
            yield Studio(f"http://127.0.0.1:{served.port}/studio", seeded_database)
    finally:
        for engine in engines:
            engine.dispose()


@pytest.fixture(scope="module")
def studio(seeded_database: str, server: EmbeddedServer, app_password: str) -> Iterator[Studio]:
    yield from _serve(seeded_database, server, read_only=False)


@pytest.fixture(scope="module")
def read_only_studio(
    seeded_database: str, server: EmbeddedServer, app_password: str
) -> Iterator[Studio]:
    yield from _serve(seeded_database, server, read_only=True)


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chromium = playwright_driver.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield chromium
    chromium.close()


VIEWPORT: ViewportSize = {"width": 1360, "height": 900}


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    browser_context = browser.new_context(viewport=VIEWPORT)
    yield browser_context
    browser_context.close()


def log_in(page: Page, studio: Studio) -> None:
    page.goto(f"{studio.url}/")
    page.fill("input[name=username]", LOGIN)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{studio.url}/")


@pytest.fixture(scope="module")
def logged_in(browser: Browser, studio: Studio) -> StorageState:
    """The cookies of one login to the (writable) studio, per module: logging in lands on the
    dashboard, whose reports would otherwise be computed and drawn again for every test."""
    browser_context = browser.new_context(viewport=VIEWPORT)
    try:
        log_in(browser_context.new_page(), studio)
        return browser_context.storage_state()
    finally:
        browser_context.close()


@pytest.fixture
def page(browser: Browser, logged_in: StorageState) -> Iterator[Page]:
    """A page logged in to the (writable) studio, in a browser context of the test's own."""
    browser_context = browser.new_context(viewport=VIEWPORT, storage_state=logged_in)
    yield browser_context.new_page()
    browser_context.close()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
