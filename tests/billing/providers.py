"""Events as Stripe and Clerk send them, signed locally exactly as they sign them (by
`afilo_db.data.provider_events`, which the demo shop uses too), with this run's secrets."""

from __future__ import annotations

import base64
import itertools
import queue
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx2
import psycopg

from afilo_db.data import provider_events
from afilo_db.data.provider_events import Delivery as Delivery  # the tests' type, re-exported

STRIPE_SECRET = "whsec_" + secrets.token_hex(16)
CLERK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
PRICE_IDS = {"starter": "price_starter000001", "professional": "price_pro000001"}
ONE_OFF_PRICE = "price_oneoff000001"


def stripe_delivery(
    event_id: str,
    event_type: str,
    created: int,
    obj: dict[str, Any],
    *,
    signed_at: int | None = None,
    secret: str = STRIPE_SECRET,
) -> Delivery:
    return provider_events.stripe_delivery(
        event_id, event_type, created, obj, secret=secret,
        signed_at=signed_at if signed_at is not None else int(time.time()),
    )  # fmt: skip


def clerk_delivery(
    message_id: str,
    event_type: str,
    timestamp_ms: int,
    data: dict[str, Any],
    *,
    signed_at: datetime | None = None,
    secret: str = CLERK_SECRET,
) -> Delivery:
    return provider_events.clerk_delivery(
        message_id, event_type, timestamp_ms, data, secret=secret,
        signed_at=signed_at or datetime.now(UTC),
    )  # fmt: skip


def clerk_user(
    clerk_user_id: str, email: str, updated_ms: int, first_name: str = "Ada"
) -> dict[str, Any]:
    return {
        "id": clerk_user_id, "object": "user", "first_name": first_name, "last_name": "Lovelace",
        "username": None, "primary_email_address_id": "idn_primary0001",
        "email_addresses": [{"id": "idn_primary0001", "email_address": email}],
        "created_at": updated_ms, "updated_at": updated_ms,
    }  # fmt: skip


def subscription(
    subscription_id: str,
    clerk_user_id: str,
    status: str,
    tier: str,
    period_start: int,
    period_end: int,
    *,
    customer: str = "cus_test000001",
    canceled_at: int | None = None,
) -> dict[str, Any]:
    return {
        "id": subscription_id, "object": "subscription", "customer": customer, "status": status,
        "metadata": {"clerk_user_id": clerk_user_id}, "cancel_at_period_end": False,
        "canceled_at": canceled_at,
        "items": {"object": "list", "data": [{
            "id": "si_" + subscription_id[4:], "current_period_start": period_start,
            "current_period_end": period_end,
            "price": {"id": PRICE_IDS[tier], "unit_amount": 1900, "currency": "usd",
                      "metadata": {"tier": tier}},
        }]},
    }  # fmt: skip


def invoice(
    invoice_id: str, subscription_id: str, customer: str, period: tuple[int, int], paid: int
) -> dict[str, Any]:
    return {
        "id": invoice_id, "object": "invoice", "customer": customer, "amount_paid": paid,
        "parent": {"subscription_details": {"subscription": subscription_id}},
        "lines": {"data": [{"period": {"start": period[0], "end": period[1]}}]},
    }  # fmt: skip


def invoice_payment(
    invoice_payment_id: str,
    invoice_id: str,
    paid: int,
    *,
    payment_intent: str | None = None,
    charge: str | None = None,
) -> dict[str, Any]:
    """An InvoicePayment as Stripe's API since 2025-03-31 writes it (`invoice_payment.paid`):
    what links a payment to its invoice, now that neither PaymentIntent nor Charge names it.
    `payment` names the PaymentIntent, or the charge of an invoice paid without one."""
    kind = "charge" if payment_intent is None else "payment_intent"
    return {
        "id": invoice_payment_id, "object": "invoice_payment", "amount_paid": paid,
        "amount_requested": paid, "created": int(time.time()), "currency": "usd",
        "invoice": invoice_id, "is_default": True, "livemode": False,
        "payment": {"type": kind, kind: payment_intent or charge},
        "status": "paid", "status_transitions": {"canceled_at": None, "paid_at": int(time.time())},
    }  # fmt: skip


def checkout_session(
    session_id: str, payment_intent: str, clerk_user_id: str, customer: str
) -> dict[str, Any]:
    return {
        "id": session_id, "object": "checkout.session", "mode": "payment",
        "payment_status": "paid", "payment_intent": payment_intent, "amount_total": 4900,
        "currency": "usd", "customer": customer, "client_reference_id": clerk_user_id,
        "metadata": {"stripe_price_id": ONE_OFF_PRICE},
    }  # fmt: skip


def payment_intent(payment_intent_id: str, clerk_user_id: str, customer: str) -> dict[str, Any]:
    return {
        "id": payment_intent_id, "object": "payment_intent", "amount_received": 4900,
        "currency": "usd", "customer": customer,
        "metadata": {"clerk_user_id": clerk_user_id, "stripe_price_id": ONE_OFF_PRICE},
    }  # fmt: skip


def refund(charge_id: str, payment_intent_id: str) -> dict[str, Any]:
    return {"id": charge_id, "object": "charge", "payment_intent": payment_intent_id,
            "refunded": True, "amount_refunded": 4900}  # fmt: skip


def _user_events(number: int, tag: str, start: int) -> list[Delivery]:
    user = f"user_{tag}{number:08d}"
    key = user[5:]
    customer, sub, pi = f"cus_{key}", f"sub_{key}", f"pi_{key}"
    plan = ("starter", "professional")[number % 2]
    trial = (start, start + 14 * 86400)
    paid = (start + 14 * 86400, start + 44 * 86400)

    def at(step: int) -> int:
        return start + step * 3600 + number

    def stripe(step: int, event_type: str, obj: dict[str, Any]) -> Delivery:
        return stripe_delivery(f"evt_{key}s{step:02d}", event_type, at(step), obj)

    def state(status: str, period: tuple[int, int], **extra: Any) -> dict[str, Any]:
        return subscription(sub, user, status, plan, *period, customer=customer, **extra)

    return [
        clerk_delivery(f"msg_{key}c00", "user.created", at(0) * 1000,
                       clerk_user(user, f"{key}@example.com", at(0) * 1000)),
        clerk_delivery(f"msg_{key}c01", "user.updated", at(1) * 1000,
                       clerk_user(user, f"{key}@example.com", at(1) * 1000, "Grace")),
        stripe(2, "customer.subscription.created", state("trialing", trial)),
        stripe(3, "invoice.paid", invoice(f"in_{key}a", sub, customer, trial, 0)),
        stripe(4, "customer.subscription.updated", state("active", paid)),
        stripe(5, "customer.subscription.updated", state("past_due", paid)),
        stripe(6, "invoice.payment_failed", invoice(f"in_{key}b", sub, customer, paid, 0)),
        stripe(7, "customer.subscription.deleted", state("canceled", paid, canceled_at=at(7)))
        if number % 2 == 0
        else stripe(7, "customer.subscription.updated", state("active", paid)),
        stripe(8, "checkout.session.completed", checkout_session(f"cs_{key}", pi, user, customer)),
        stripe(9, "charge.refunded", refund(f"ch_{key}", pi))
        if number % 2 == 0
        else stripe(9, "payment_intent.succeeded", payment_intent(pi, user, customer)),
    ]  # fmt: skip


def marketplace_events(users: int, tag: str = "m") -> list[Delivery]:
    """Ten events for each of `users` users, in the order they happened: sign-up and a profile
    update (Clerk); a trial, its free invoice, activation, past_due and its failed invoice, then
    a cancellation or a recovery (Stripe); a one-off checkout, then a refund or the payment's
    own event. Signed now: post them within Stripe's and Svix's five minutes."""
    start = int(time.time()) - 40 * 86400
    return [event for number in range(users) for event in _user_events(number, tag, start)]


def stock_catalog(owner_url: str) -> None:
    """The products the events buy: in the starter and professional tiers, one sold only one-off
    (Stripe price ONE_OFF_PRICE), and a draft one."""
    with psycopg.connect(owner_url) as owner:
        for handle, tier, status, price in (
            ("starter-kit", "starter", "active", PRICE_IDS["starter"]),
            ("pro-kit", "professional", "active", PRICE_IDS["professional"]),
            ("one-off-kit", None, "active", ONE_OFF_PRICE),
            ("draft-kit", "starter", "draft", "price_draft000001"),
        ):
            owner.execute(
                "WITH p AS (INSERT INTO products (handle, title, status, included_in_tier)"
                " VALUES (%s, %s, %s, %s) RETURNING id)"
                " INSERT INTO product_variants (product_id, sku, title, license_type, price,"
                " seats, stripe_price_id) SELECT id, %s, 'Personal', 'personal', 49, 1, %s FROM p",
                (handle, handle.title(), status, tier, handle.upper(), price),
            )


RETRY_BACKOFF_SECONDS = 0.05
RETRY_BACKOFF_CAP_SECONDS = 2.0


Post = Callable[[Delivery], int]
"""Posts one delivery; its answer's status."""


@contextmanager
def httpx_sender(base_url: str) -> Iterator[Post]:
    """An httpx client, as a Python back end would post."""
    with httpx2.Client(base_url=base_url, timeout=30) as client:

        def post(delivery: Delivery) -> int:
            return client.post(
                delivery.path, content=delivery.body, headers=delivery.headers
            ).status_code

        yield post


_CONTENT_LENGTH = re.compile(rb"^content-length:[ \t]*(\d+)", re.IGNORECASE | re.MULTILINE)


@contextmanager
def socket_sender(base_url: str) -> Iterator[Post]:
    """HTTP/1.1 written and read by hand on one kept-alive socket: next to no client CPU, as
    the providers' own senders spend none of the endpoint's machine (a benchmark's senders
    share its cores). Reads only answers with a Content-Length, as the endpoint's are."""
    address = urlsplit(base_url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    with socket.create_connection((host, port), timeout=30) as connection:
        received = b""

        def post(delivery: Delivery) -> int:
            nonlocal received
            lines = [f"POST {delivery.path} HTTP/1.1", f"Host: {host}:{port}",
                     f"Content-Length: {len(delivery.body)}",
                     *(f"{name}: {value}" for name, value in delivery.headers.items())]  # fmt: skip
            connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + delivery.body)
            while b"\r\n\r\n" not in received:
                received += _received(connection)
            head, _, received = received.partition(b"\r\n\r\n")
            length = _CONTENT_LENGTH.search(head)
            assert length is not None, head
            while len(received) < int(length[1]):
                received += _received(connection)
            received = received[int(length[1]) :]
            return int(head.split(b" ", 2)[1])

        yield post


def _received(connection: socket.socket) -> bytes:
    chunk = connection.recv(65536)
    if not chunk:
        raise ConnectionError("the endpoint closed the connection")
    return chunk


def deliver_all(
    base_url: str,
    deliveries: list[Delivery],
    workers: int = 8,
    sender: Callable[[str], AbstractContextManager[Post]] = httpx_sender,
) -> int:
    """Post every delivery from `workers` threads at once. One refused with 409 or 500 goes back
    to the end of the queue after a backoff that doubles with each retry of its event, as Stripe
    and Svix retry later (theirs in hours, here in tenths of a second). Without it, the last few
    deliveries of a run would be re-posted in a tight loop while the one they wait for is still
    in flight, and reach the parking bound (rules.WEBHOOK_DEFER_MAX_ATTEMPTS) in milliseconds.
    Returns the number of posts."""
    pending: queue.Queue[Delivery] = queue.Queue()
    for delivery in deliveries:
        pending.put(delivery)
    posts = itertools.count()
    failures: list[tuple[str, int]] = []
    retries: dict[str, int] = {}

    def work() -> None:
        with sender(base_url) as post:
            while True:
                try:
                    delivery = pending.get_nowait()
                except queue.Empty:
                    return
                status = post(delivery)
                if next(posts) > 50 * len(deliveries):
                    failures.append((delivery.event_id, status))
                    return
                if status in (409, 500):
                    retried = retries.get(delivery.event_id, 0)
                    retries[delivery.event_id] = retried + 1
                    time.sleep(min(RETRY_BACKOFF_SECONDS * 2**retried, RETRY_BACKOFF_CAP_SECONDS))
                    pending.put(delivery)
                elif status != 200:
                    failures.append((delivery.event_id, status))

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert pending.empty()
    return next(posts)
