"""The endpoint's edges: the body limit enforced while reading, signed but malformed content
answered 400 naming the JSON path (never a 500), Stripe signatures from the future refused as
Svix refuses them, one log line per delivery, every refusal counted in webhook_refusals, and a
500 that logs its traceback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import psycopg
import pytest
import stripe
import uvicorn
from starlette.testclient import TestClient
from starlette.types import Message

from afilo_db.billing.endpoint import MAX_BODY_BYTES, create_webhook_app
from afilo_db.db.engine import create_app_engine
from tests.billing.conftest import SECRETS, Shop, parked_problems, post
from tests.billing.providers import STRIPE_SECRET, Delivery, stripe_delivery, subscription
from tests.billing.test_verification import stripe_created, written
from tests.conftest import run_coroutine

NOW = int(time.time())


def signed(body: str, signed_at: int | None = None) -> Delivery:
    header = stripe.WebhookSignature.generate_signature_header(
        body, STRIPE_SECRET, signed_at if signed_at is not None else int(time.time())
    )
    return Delivery("stripe", "evt_any", body.encode(), {"Stripe-Signature": header})


def refusals(shop: Shop) -> list[tuple[object, ...]]:
    with psycopg.connect(shop.owner_url) as owner:
        rows = owner.execute(
            "SELECT provider, status, reason, deliveries FROM webhook_refusals ORDER BY reason"
        ).fetchall()
    return [tuple(row) for row in rows]


def test_a_chunked_body_over_the_limit_gets_413_without_being_read_whole(
    client: TestClient, shop: Shop
) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(3 * MAX_BODY_BYTES // 65536):
            sent += 65536
            yield b" " * 65536

    # An iterator is sent chunked: no Content-Length header at all.
    response = client.post("/webhooks/stripe", content=chunks(), headers=stripe_created().headers)
    assert response.status_code == 413
    assert written(shop) == (0, 0, 0, 0)
    assert refusals(shop) == [("stripe", 413, "body too large", 1)]


def test_a_declared_length_over_the_limit_gets_413(client: TestClient, shop: Shop) -> None:
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    response = client.post("/webhooks/stripe", content=body, headers=stripe_created().headers)
    assert response.status_code == 413


def _event(obj: dict[str, object], created: object = NOW) -> str:
    return json.dumps({"id": "evt_malformed0001", "object": "event",
                       "type": "customer.subscription.created", "created": created,
                       "data": {"object": obj}})  # fmt: skip


def _nested(depth: int) -> str:
    return _event({"id": "sub_x0000001"})[:-2] + ', "deep": ' + "[" * depth + "]" * depth + "}}"


MALFORMED = {
    "nested deeper than a JSON parser recurses": (_nested(100_000), "body"),
    "nested deeper than any event": (_nested(200), "body.data.deep"),
    "a time past the year 9999": (_event({"id": "sub_x"}, created=10**13), "created"),
    "a NUL character": (_event({"id": "sub_x", "note": "a\u0000b"}), "body.data.object.note"),
    "a lone surrogate": (
        _event({"id": "sub_x"}).replace('"sub_x"', '"sub_\\ud800"'),
        "body.data.object.id",
    ),
    "a NUL in a key": (_event({"id": "sub_x", "k\u0000": 1}), "body.data.object.k\u0000"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_signed_malformed_content_gets_400_naming_the_path(
    client: TestClient, shop: Shop, name: str
) -> None:
    body, path = MALFORMED[name]
    status, answer = post(client, signed(body))
    assert status == 400, answer
    problems = answer["problems"]
    assert isinstance(problems, dict) and any(key.startswith(path) for key in problems), problems
    assert written(shop) == (0, 0, 0, 0)


def test_a_time_past_9999_inside_the_object_is_parked_naming_it(
    client: TestClient, shop: Shop
) -> None:
    obj = subscription("sub_late00000001", "user_x000000001", "active", "starter", NOW, 10**12)
    answer = post(client, stripe_delivery("evt_late00000001",
                                          "customer.subscription.created", NOW, obj))  # fmt: skip
    assert "data.object.items.data.0.current_period_end" in parked_problems(answer)


def test_a_stripe_signature_from_the_future_is_refused(client: TestClient, shop: Shop) -> None:
    status, answer = post(client, stripe_created(signed_at=int(time.time()) + 330))
    assert status == 400 and "too new" in str(answer["problems"])
    assert written(shop) == (0, 0, 0, 0)
    # Within the tolerance, a clock a little ahead is fine.
    assert post(client, stripe_created(signed_at=int(time.time()) + 60))[0] == 409


def test_every_refusal_is_counted_by_reason_and_logged(
    client: TestClient, shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="afilo_db.billing.endpoint")
    for _ in range(3):
        post(client, stripe_created(secret="whsec_someoneelse"))
    post(client, signed("[1, 2]"))
    assert refusals(shop) == [("stripe", 400, "body", 1), ("stripe", 400, "stripe.signature", 3)]
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 4
    assert not any(STRIPE_SECRET in r.getMessage() for r in caplog.records)


def test_one_log_line_per_delivery(
    client: TestClient, shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="afilo_db.billing.endpoint")
    post(client, stripe_created())
    lines = [r.getMessage() for r in caplog.records if r.name == "afilo_db.billing.endpoint"]
    assert len(lines) == 1
    assert lines[0].startswith(
        "stripe evt_verify000001 customer.subscription.created: 409 deferred"
    )
    assert lines[0].endswith(" ms")


def test_a_500_logs_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    # A database that cannot be reached: the provider retries, the operator reads why.
    engine = create_app_engine("postgresql://nobody@127.0.0.1:1/none")
    try:
        with TestClient(create_webhook_app(engine, SECRETS)) as client:
            status, _ = post(client, stripe_created())
    finally:
        engine.dispose()
    assert status == 500
    failed = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert failed and "evt_verify000001" in failed[0].getMessage()


def test_uvicorn_serves_the_endpoint_with_httptools_and_uvloop() -> None:
    # `webhooks serve` leaves uvicorn's choice to "auto", which falls back to h11 and asyncio's
    # pure-Python loop without a word when either package is missing.
    engine = create_app_engine("postgresql://nobody@127.0.0.1:1/never_connected")
    config = uvicorn.Config(create_webhook_app(engine, SECRETS))
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    loop_factory = config.get_loop_factory()
    assert loop_factory is not None
    loop = loop_factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_other_paths_and_methods_get_404_and_405() -> None:
    engine = create_app_engine("postgresql://nobody@127.0.0.1:1/never_connected")
    try:
        with TestClient(create_webhook_app(engine, SECRETS)) as client:
            missing = client.post("/webhooks/paypal", content=b"{}")
            wrong_method = client.get("/webhooks/clerk")
    finally:
        engine.dispose()
    assert (missing.status_code, missing.text) == (404, "Not Found")
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")


def test_a_sender_gone_before_its_body_is_read_gets_no_answer() -> None:
    # Nobody is left to read one, and nothing was received that could be stored or counted.
    engine = create_app_engine("postgresql://nobody@127.0.0.1:1/never_connected")
    app = create_webhook_app(engine, SECRETS)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/webhooks/stripe", "headers": []}
    try:
        run_coroutine(app(scope, receive, send))
    finally:
        engine.dispose()
    assert sent == []
