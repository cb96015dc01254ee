"""The webhook endpoint: `POST /webhooks/stripe` and `POST /webhooks/clerk`, one transaction per
delivery, on the service role's engine.

Answers: 200 `applied` / `recorded` / `ignored` (with the reason) / `duplicate` / `unresolved`
(an event parked for an operator: waiting past the bound, or breaking a rule, its `problems`
named); 400 for a missing, invalid, expired or future signature or a body that is not a storable
event (naming the JSON path); 413 for a body over MAX_BODY_BYTES, however it is sent; 422 for an
event that cannot even be stored as parked; 409 for one that refers to something not received
yet (stored as deferred: the provider retries, up to a bound after which it is parked as
`unresolved`); 500 otherwise (retried too, its traceback logged). Nothing of a refused delivery
is written but its count in `webhook_refusals`. One log line per delivery: provider, event id, type, status, time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool
from starlette.types import Receive, Scope, Send

from afilo_db.billing.events import Outcome, ProviderEvent
from afilo_db.billing.ingest import apply
from afilo_db.billing.threads import LoopThreads
from afilo_db.billing.verification import verify_clerk, verify_stripe
from afilo_db.config import get_settings
from afilo_db.errors import AfiloError, ConflictError, ValidationError
from afilo_db.security import service_context

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A provider's body is a few kilobytes; refuse what cannot be an event while reading it, whatever
# the headers say (a chunked body has no Content-Length).
MAX_BODY_BYTES = 1_000_000

# What each outcome answers: 409 asks the provider to deliver the event again later.
_STATUS = {Outcome.DEFERRED: 409}

_REFUSAL_SQL = text("""
INSERT INTO webhook_refusals (provider, status, reason) VALUES (:provider, :status, :reason)
ON CONFLICT (provider, status, reason)
DO UPDATE SET deliveries = webhook_refusals.deliveries + 1, last_at = now()
""")


@dataclass(frozen=True)
class WebhookSecrets:
    stripe: str | None
    clerk: str | None


def record_refusal(engine: Engine, provider: str, status: int, reason: str) -> None:
    """Count a refused delivery by provider, status and reason, in a transaction of its own."""
    with Session(engine) as session, session.begin():
        service_context(session)
        session.execute(_REFUSAL_SQL, {"provider": provider, "status": status, "reason": reason})


class _TooLargeError(Exception):
    pass


class _DisconnectedError(Exception):
    pass


async def _body(headers: Mapping[str, str], receive: Receive) -> bytes:
    """The body, read while counting: more than MAX_BODY_BYTES stops the reading."""
    declared = headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise _TooLargeError
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _DisconnectedError
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (ASGI gives them so); the first of a repeated
    one, as Starlette's `Request.headers` gives it."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    headers = [(b"content-length", b"%d" % len(body)), (b"content-type", content_type), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _json(answer: Mapping[str, object]) -> bytes:
    """An answer's body, compact UTF-8 JSON."""
    return json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _refusal(error: AfiloError) -> tuple[bytes, str]:
    """The body of the answer to a refused delivery, and the reason it is counted under: the
    fields and rules at fault, without what was sent."""
    body: dict[str, object] = {"error": str(error)}
    reason = type(error).__name__
    if isinstance(error, ValidationError):
        body["problems"] = error.problems
        reason = ", ".join(sorted(error.problems))
    return _json(body), reason


Verify = Callable[[bytes, Mapping[str, str], str], ProviderEvent]


def _verify_stripe(body: bytes, headers: Mapping[str, str], secret: str) -> ProviderEvent:
    return verify_stripe(body, headers.get("stripe-signature"), secret)


@dataclass(frozen=True)
class _Route:
    provider: str
    secret: str | None
    verify: Verify


class WebhookApp:
    """The endpoint as an ASGI application: POST /webhooks/stripe and POST /webhooks/clerk on
    `engine` (the service role's login); 404 for any other path, 405 for another method.

    A plain ASGI callable rather than a Starlette app: each delivery is one path looked up, one
    body read and one JSON answer sent, which Starlette's middleware, routing, Request and
    Response layers only wrapped, at a CPU cost on the event loop's thread that every delivery
    paid (`bench.webhooks`).

    A delivery's transaction runs on one of the app's own threads, one per connection the
    engine's pool keeps: at most as many deliveries use the database at once, the others wait
    their turn in the threads' queue, holding neither a thread nor a connection. Beyond the
    pool's size each would open an overflow connection that the pool closes again when it
    comes back, a login and its prepared statements lost per burst (`bench.webhooks`). The
    threads are the app's (`LoopThreads`), neither anyio's shared ones nor an executor's:
    handing work to them is a queue's put and the loop's own future, where anyio's limiter and
    the executor's second future cost more CPU than the hop itself."""

    def __init__(self, engine: Engine, secrets: WebhookSecrets) -> None:
        self._engine = engine
        self._routes = {
            "/webhooks/stripe": _Route("stripe", secrets.stripe, _verify_stripe),
            "/webhooks/clerk": _Route("clerk", secrets.clerk, verify_clerk),
        }
        # An engine without a QueuePool (NullPool: a connection a delivery) gets as many
        # threads as the setting says its pool would keep.
        pooled = engine.pool.size() if isinstance(engine.pool, QueuePool) else None
        self._threads = LoopThreads(pooled or get_settings().db_pool_size, "webhook-delivery")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # a WebSocket: nothing here speaks it
            await send({"type": "websocket.close"})
            return
        route = self._routes.get(scope["path"])
        if route is None:
            await _answer(send, 404, b"Not Found", b"text/plain; charset=utf-8")
        elif scope["method"] != "POST":
            await _answer(
                send,
                405,
                b"Method Not Allowed",
                b"text/plain; charset=utf-8",
                ((b"allow", b"POST"),),
            )
        else:
            try:
                status, body = await self._deliver(route, _headers(scope), receive)
            except _DisconnectedError:
                return  # nobody to answer
            await _answer(send, status, body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._threads.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _in_thread(self, work: Callable[..., T], *arguments: Any) -> T:
        return await self._threads.run(work, *arguments)

    async def _refused(
        self, provider: str, status: int, reason: str, body: bytes
    ) -> tuple[int, bytes]:
        logger.warning("%s delivery refused: %d %s", provider, status, reason)
        try:
            await self._in_thread(record_refusal, self._engine, provider, status, reason)
        except Exception:
            logger.exception("%s refusal could not be recorded", provider)
        return status, body

    async def _deliver(
        self, route: _Route, headers: Mapping[str, str], receive: Receive
    ) -> tuple[int, bytes]:
        """The answer to one delivery: its status and body."""
        started = time.perf_counter()
        provider = route.provider
        if route.secret is None:
            return await self._refused(provider, 503, "no signing secret configured", _json(
                {"error": f"no signing secret configured for {provider}"}
            ))  # fmt: skip
        try:
            body = await _body(headers, receive)
        except _TooLargeError:
            return await self._refused(provider, 413, "body too large", _json(
                {"error": f"body too large: at most {MAX_BODY_BYTES} bytes"}
            ))  # fmt: skip
        event: ProviderEvent | None = None
        try:
            event = route.verify(body, headers, route.secret)
            result = await self._in_thread(apply, self._engine, event)
        except ValidationError as error:
            # Until the event is verified and parsed, the delivery is bad (a signature, a
            # body that is no storable event); after, the event breaks a rule of a column of
            # its own and cannot even be parked (`apply` parks the others).
            status = 400 if event is None else 422
            refusal, reason = _refusal(error)
            return await self._refused(provider, status, reason, refusal)
        except ConflictError as error:
            # A race with another delivery (a unique key taken meanwhile): the retry applies.
            logger.warning("%s event %s conflicted: %s", provider, event and event.event_id, error)
            return 409, _refusal(error)[0]
        except Exception:
            # Retried by the provider; the traceback says why.
            logger.exception(
                "%s event %s (%s) could not be applied",
                provider,
                event.event_id if event else "?",
                event.event_type if event else "?",
            )
            return 500, _json({"error": "internal error"})
        status = _STATUS.get(result.outcome, 200)
        logger.info(
            "%s %s %s: %d %s in %.1f ms",
            provider,
            event.event_id,
            event.event_type,
            status,
            result.outcome.value,
            (time.perf_counter() - started) * 1000,
        )
        answer: dict[str, object] = {"status": result.outcome.value, "event_id": event.event_id}
        if result.reason is not None:
            answer["reason"] = result.reason
        if result.problems:
            answer["problems"] = dict(result.problems)
        return status, _json(answer)


def create_webhook_app(engine: Engine, secrets: WebhookSecrets) -> WebhookApp:
    """The two routes on `engine` (the service role's login), as an ASGI application."""
    return WebhookApp(engine, secrets)
