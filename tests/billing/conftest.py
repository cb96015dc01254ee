"""A marketplace with a catalog Stripe's prices point at, and the webhook endpoint on the
service role's login: in process (Starlette's TestClient) or served by uvicorn on a free
loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from sqlalchemy import Engine
from starlette.testclient import TestClient

from afilo_db.billing.endpoint import WebhookSecrets, create_webhook_app
from afilo_db.db.engine import create_app_engine
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE
from tests.billing.providers import CLERK_SECRET, STRIPE_SECRET, Delivery, stock_catalog
from tests.security.conftest import as_app_role

SECRETS = WebhookSecrets(stripe=STRIPE_SECRET, clerk=CLERK_SECRET)


@dataclass(frozen=True)
class Shop:
    owner_url: str
    app_url: str
    service_url: str


def open_shop(owner_url: str, app_password: str, service_password: str) -> Shop:
    stock_catalog(owner_url)
    return Shop(
        owner_url,
        as_app_role(owner_url, app_password, APP_ROLE),
        as_app_role(owner_url, service_password, SERVICE_ROLE),
    )


@pytest.fixture
def shop(database_url: str, app_password: str, service_password: str) -> Shop:
    return open_shop(database_url, app_password, service_password)


@pytest.fixture
def service_engine(shop: Shop) -> Iterator[Engine]:
    engine = create_app_engine(shop.service_url)
    yield engine
    engine.dispose()


@pytest.fixture
def client(service_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_webhook_app(service_engine, SECRETS)) as client:
        yield client


def post(client: TestClient, delivery: Delivery) -> tuple[int, dict[str, object]]:
    response = client.post(delivery.path, content=delivery.body, headers=delivery.headers)
    return response.status_code, response.json()


def parked_problems(answer: tuple[int, dict[str, object]]) -> dict[str, str]:
    """The fields and rules of an event parked for breaking a rule: answered 200 `unresolved`
    (no delivery again can change it, so its provider must stop retrying)."""
    status, body = answer
    assert (status, body["status"]) == (200, "unresolved"), body
    assert str(body["reason"]).startswith("breaks a rule: "), body
    problems = body["problems"]
    assert isinstance(problems, dict), body
    return problems


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(service_engine: Engine) -> Iterator[str]:
    """The endpoint served by uvicorn on 127.0.0.1, as `afilo-db webhooks serve` serves it."""
    config = uvicorn.Config(
        create_webhook_app(service_engine, SECRETS),
        host="127.0.0.1",
        port=_free_port(),
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{config.port}"
    server.should_exit = True
    thread.join(timeout=20)
