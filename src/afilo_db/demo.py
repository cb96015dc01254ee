"""The demo shop of `afilo-db up`, made the way production data is made.

The catalog comes from the seed; the customers and their money from Stripe's and Clerk's events
(`data.demo_shop`), each signed with a secret made for this run, verified by `verify_stripe` /
`verify_clerk` and applied by `billing.ingest`, the endpoint's own steps after the HTTP layer;
their behaviour from analytics `ingest`. So the mirror, the money facts its triggers derive and
every report are what the webhooks would have made.

Why not through HTTP: `up` fills the database in one transaction (under its lock: a failure
leaves it empty, to be filled by the next run), and the endpoint commits each delivery on its
own; an in-process HTTP client would also be a runtime dependency for nothing the handlers see.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from afilo_db.analytics.events import ingest as ingest_behaviour
from afilo_db.billing import ProviderEvent, ingest, verify_clerk, verify_stripe
from afilo_db.data import demo_shop
from afilo_db.data.provider_events import Delivery
from afilo_db.data.up import UpProgress, seed_catalog
from afilo_db.security import service_context

# Whole months the events span: the story's and this month's, and one ahead.
EVENT_MONTHS = demo_shop.HISTORY_DAYS // 28 + 2


def verified(delivery: Delivery, secret: str) -> ProviderEvent:
    """The delivery's event, once its signature is checked as the endpoint checks it."""
    if delivery.provider == "stripe":
        return verify_stripe(delivery.body, delivery.headers["Stripe-Signature"], secret)
    return verify_clerk(delivery.body, delivery.headers, secret)


def populate(session: Session, progress: UpProgress) -> None:
    """`Populate` for `data.up.bring_up`: the catalog, then six months of a shop up to now."""
    connection = seed_catalog(session, progress)
    now = datetime.now(UTC)
    shop = demo_shop.demo_shop(now)
    connection.execute("SELECT ensure_event_partitions(%s, %s)", (shop.opened.date(), EVENT_MONTHS))
    secret = "whsec_" + secrets.token_hex(24)
    phase = "delivering the demo shop's webhooks"
    progress(phase, 0, len(shop.messages))
    with service_context(session):
        for done, message in enumerate(shop.messages, 1):
            # Signed as it is sent: the verification allows five minutes, whatever came before.
            ingest(session, verified(message.signed(secret, datetime.now(UTC)), secret))
            if done % 50 == 0 or done == len(shop.messages):
                progress(phase, done, len(shop.messages))
    progress("recording the demo shop's behaviour", 0, None)
    users = demo_shop.user_ids(connection, shop.clerk_user_ids)
    ingest_behaviour(connection, demo_shop.behaviour_events(shop, users))
    demo_shop.write_rows(connection, shop, users)
