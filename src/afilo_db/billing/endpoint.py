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

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from afilo_db.billing.events import Outcome, ProviderEvent
from afilo_db.billing.ingest import apply
from afilo_db.billing.verification import verify_clerk, verify_stripe
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


async def _body(request: Request) -> bytes:
    """The body, read while counting: more than MAX_BODY_BYTES stops the reading."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise _TooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal(status: int, error: AfiloError) -> tuple[JSONResponse, str]:
    """The answer to a refused delivery, and the reason it is counted under: the fields and
    rules at fault, without what was sent."""
    body: dict[str, object] = {"error": str(error)}
    reason = type(error).__name__
    if isinstance(error, ValidationError):
        body["problems"] = error.problems
        reason = ", ".join(sorted(error.problems))
    return JSONResponse(body, status_code=status), reason


def create_webhook_app(engine: Engine, secrets: WebhookSecrets) -> Starlette:
    """The two routes on `engine` (the service role's login). A delivery's transaction runs on
    one of the app's own threads, one per connection the engine's pool keeps: at most as many
    deliveries use the database at once, the others wait their turn in the threads' queue,
    holding neither a thread nor a connection. Beyond the pool's size each would open an
    overflow connection that the pool closes again when it comes back, a login and its prepared
    statements lost per burst (`bench.webhooks`). The threads are the app's, not anyio's shared
    ones: handing work to them is a queue's put and a future, where anyio's limiter and its
    per-call bookkeeping cost the event loop's thread more CPU than the hop itself."""
    workers = ThreadPoolExecutor(
        max_workers=engine.pool.size() if isinstance(engine.pool, QueuePool) else None,
        thread_name_prefix="webhook-delivery",
    )

    async def in_thread(work: Callable[..., T], *arguments: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(workers, work, *arguments)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            workers.shutdown()

    def endpoint(
        provider: str, secret: str | None, verify: Callable[[bytes, Request, str], ProviderEvent]
    ) -> Callable[[Request], object]:
        async def refused(status: int, reason: str, response: JSONResponse) -> JSONResponse:
            logger.warning("%s delivery refused: %d %s", provider, status, reason)
            try:
                await in_thread(record_refusal, engine, provider, status, reason)
            except Exception:
                logger.exception("%s refusal could not be recorded", provider)
            return response

        async def receive(request: Request) -> JSONResponse:
            started = time.perf_counter()
            if secret is None:
                return await refused(503, "no signing secret configured", JSONResponse(
                    {"error": f"no signing secret configured for {provider}"}, status_code=503
                ))  # fmt: skip
            try:
                body = await _body(request)
            except _TooLargeError:
                return await refused(413, "body too large", JSONResponse(
                    {"error": f"body too large: at most {MAX_BODY_BYTES} bytes"}, status_code=413
                ))  # fmt: skip
            event: ProviderEvent | None = None
            try:
                event = verify(body, request, secret)
                result = await in_thread(apply, engine, event)
            except ValidationError as error:
                # Until the event is verified and parsed, the delivery is bad (a signature, a
                # body that is no storable event); after, the event's content breaks a rule.
                status = 400 if event is None else 422
                response, reason = _refusal(status, error)
                return await refused(status, reason, response)
            except ConflictError as error:
                # A race with another delivery (a unique key taken meanwhile): the retry applies.
                logger.warning(
                    "%s event %s conflicted: %s", provider, event and event.event_id, error
                )
                return _refusal(409, error)[0]
            except Exception:
                # Retried by the provider; the traceback says why.
                logger.exception(
                    "%s event %s (%s) could not be applied",
                    provider,
                    event.event_id if event else "?",
                    event.event_type if event else "?",
                )
                return JSONResponse({"error": "internal error"}, status_code=500)
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
            return JSONResponse(answer, status_code=status)

        return receive

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route(
                "/webhooks/stripe",
                endpoint(
                    "stripe",
                    secrets.stripe,
                    lambda body, request, secret: verify_stripe(
                        body, request.headers.get("stripe-signature"), secret
                    ),
                ),
                methods=["POST"],
            ),
            Route(
                "/webhooks/clerk",
                endpoint(
                    "clerk",
                    secrets.clerk,
                    lambda body, request, secret: verify_clerk(body, request.headers, secret),
                ),
                methods=["POST"],
            ),
        ],
    )
