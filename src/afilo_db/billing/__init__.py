"""Stripe and Clerk, mirrored: webhook verification, the event store and the event handlers.

`verify_stripe` / `verify_clerk` check a delivery's signature with the providers' own libraries
and give a `ProviderEvent`; `ingest` stores it once and applies it, in the caller's transaction,
in the service context, and gives its `Result` (outcome and reason); when it raises
NotYetKnownError, `defer` (after a rollback) stores it as waiting, up to the bound; `apply`
does both in a transaction of its own on an engine, committed (what the endpoint runs), and parks
an event whose content breaks a rule as unresolved; `parked.retry` applies the unresolved ones
again; `create_webhook_app` serves both providers as a small ASGI endpoint.
"""

from afilo_db.billing.events import NotYetKnownError, Outcome, ProviderEvent, Result, SignatureError
from afilo_db.billing.ingest import apply, defer, ingest
from afilo_db.billing.verification import verify_clerk, verify_stripe

__all__ = [
    "NotYetKnownError",
    "Outcome",
    "ProviderEvent",
    "Result",
    "SignatureError",
    "apply",
    "defer",
    "ingest",
    "verify_clerk",
    "verify_stripe",
]
