"""The webhook endpoint: `POST /webhooks/stripe` and `POST /webhooks/clerk`, one transaction per
delivery, on the service role's engine.

Answers: 200 `applied` / `duplicate` / `ignored`; 400 for a missing, invalid or expired signature
or a body that is not an event; 422 for an event whose content breaks a rule; 409 for one that
refers to something not received yet (the provider retries); 500 otherwise (retried too).
Nothing of a refused delivery is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from afilo_db.billing.events import ProviderEvent, SignatureError
from afilo_db.billing.ingest import Outcome, ingest
from afilo_db.billing.verification import verify_clerk, verify_stripe
from afilo_db.errors import AfiloError, ConflictError, ValidationError

logger = logging.getLogger(__name__)

# A provider's body is a few kilobytes; refuse what cannot be an event before reading it all.
MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True)
class WebhookSecrets:
    stripe: str | None
    clerk: str | None


def apply_event(engine: Engine, event: ProviderEvent) -> Outcome:
    """Store and apply one verified event in a transaction of its own."""
    with Session(engine) as session, session.begin():
        return ingest(session, event)


def _error(status: int, error: AfiloError) -> JSONResponse:
    body: dict[str, object] = {"error": str(error)}
    if isinstance(error, ValidationError):
        body["problems"] = error.problems
    return JSONResponse(body, status_code=status)


def create_webhook_app(engine: Engine, secrets: WebhookSecrets) -> Starlette:
    def endpoint(
        provider: str, secret: str | None, verify: Callable[[bytes, Request, str], ProviderEvent]
    ) -> Callable[[Request], object]:
        async def answer(request: Request) -> tuple[JSONResponse, str]:
            """The response, and what the delivery was in words for the log (never its body)."""
            if secret is None:
                return JSONResponse(
                    {"error": f"no signing secret configured for {provider}"}, status_code=503
                ), "refused: no signing secret"
            length = request.headers.get("content-length", "0")
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                return JSONResponse({"error": "body too large"}, status_code=413), "body too large"
            body = await request.body()
            try:
                event = verify(body, request, secret)
            except SignatureError as error:
                return _error(400, error), "signature refused"
            except ValidationError as error:
                return _error(400 if "body" in error.problems else 422, error), "not an event"
            delivery = f"{event.event_type} {event.event_id}"
            try:
                outcome = await run_in_threadpool(apply_event, engine, event)
            except ValidationError as error:
                # Before verification a bad body is the sender's; after, the event's content.
                return _error(400 if "body" in error.problems else 422, error), delivery
            except ConflictError as error:
                return _error(409, error), delivery
            except AfiloError as error:
                return _error(500, error), delivery
            except Exception:
                logger.exception("%s event could not be applied", provider)
                return JSONResponse({"error": "internal error"}, status_code=500), delivery
            response = JSONResponse({"status": outcome.value, "event_id": event.event_id})
            return response, f"{delivery}: {outcome.value}"

        async def receive(request: Request) -> JSONResponse:
            started = time.monotonic()
            response, delivery = await answer(request)
            elapsed_ms = (time.monotonic() - started) * 1000
            logger.info("%s %d %s (%.0f ms)", provider, response.status_code, delivery, elapsed_ms)
            return response

        return receive

    return Starlette(
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
        ]
    )
