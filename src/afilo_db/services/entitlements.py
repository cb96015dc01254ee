"""Entitlements: may this user download this product now, and why. Every answer comes from the
database function `download_entitlements(user, product)`, the very one the downloads policy
calls, so the rule exists once. Run as the application role acting for a user (`as_user`), it
sees only that user's billing and published products; as the owner or the service, everyone's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from afilo_db import rules


@dataclass(frozen=True)
class Entitlement:
    product_id: uuid.UUID
    product_handle: str
    reason: str
    """e.g. 'active subscription sub_..., tier professional' or 'paid purchase pi_...'."""
    subscription_id: uuid.UUID | None
    purchase_id: uuid.UUID | None
    valid_until: datetime | None
    """When a subscription's grant ends (period end, plus the grace period when past_due);
    None for a purchase."""


_ENTITLEMENTS_SQL = text(f"""
SELECT p.id, p.handle, e.reason, e.subscription_id, e.purchase_id, e.valid_until
FROM products p CROSS JOIN LATERAL download_entitlements(:user_id, p.id) e
WHERE p.status = {rules.sql_literal(rules.PUBLISHED_PRODUCT_STATUS)}
  AND (CAST(:product_id AS uuid) IS NULL OR p.id = :product_id)
ORDER BY p.handle, e.reason
""")


def entitlements(
    session: Session, user_id: uuid.UUID, product_id: uuid.UUID | None = None
) -> list[Entitlement]:
    """Why the user may download the product now (empty: they may not); without a product,
    every published product they may download, each with its reasons."""
    rows = session.execute(_ENTITLEMENTS_SQL, {"user_id": user_id, "product_id": product_id})
    return [Entitlement(*row) for row in rows]


def may_download(session: Session, user_id: uuid.UUID, product_id: uuid.UUID) -> bool:
    return bool(entitlements(session, user_id, product_id))
