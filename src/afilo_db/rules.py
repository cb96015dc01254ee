"""The marketplace's rules as data: one source for the database constraints (models) and the
input validation, so that the two cannot drift apart."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

# Lowercase URL-safe slug: words of [a-z0-9] joined by single hyphens.
HANDLE_PATTERN: Final = r"^[a-z0-9]+(-[a-z0-9]+)*$"
HANDLE_MAX_LENGTH: Final = 100
SKU_PATTERN: Final = r"^[A-Z0-9]+(-[A-Z0-9]+)*$"
SKU_MAX_LENGTH: Final = 64

# Stripe object ids by kind; Clerk user ids.
STRIPE_ID_PREFIXES: Final = {
    "product": "prod",
    "price": "price",
    "customer": "cus",
    "subscription": "sub",
    "event": "evt",
    "payment_intent": "pi",
    "checkout_session": "cs",
    "invoice": "in",
}
EXTERNAL_ID_BODY: Final = r"[A-Za-z0-9]{6,64}"


def stripe_id_pattern(kind: str) -> str:
    return rf"^{STRIPE_ID_PREFIXES[kind]}_{EXTERNAL_ID_BODY}$"


CLERK_USER_ID_PATTERN: Final = rf"^user_{EXTERNAL_ID_BODY}$"

# Emails are stored in their normalized form: ASCII (internationalized domains as punycode),
# lowercase, dot-atom local part, a domain of at least two labels. email-validator checks the full
# syntax of what people type; this is what the database guarantees for what is stored.
_EMAIL_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
EMAIL_PATTERN: Final = rf"^{_EMAIL_ATOM}(\.{_EMAIL_ATOM})*@{_EMAIL_LABEL}(\.{_EMAIL_LABEL})+$"
EMAIL_MAX_LENGTH: Final = 254

# Money: numeric(12, 2) in the database, Decimal in Python. Only two-decimal currencies are sold.
PRICE_SCALE: Final = 2
PRICE_MAX: Final = Decimal("1000000.00")
CURRENCIES: Final = ("AUD", "CAD", "CHF", "DKK", "EUR", "GBP", "NOK", "NZD", "SEK", "SGD", "USD")

# Subscription tiers, lowest first: a product included in a tier is included in every higher one.
SUBSCRIPTION_TIERS: Final = ("free", "starter", "professional", "enterprise")

PRODUCT_STATUSES: Final = ("draft", "active", "archived")
SUBSCRIPTION_STATUSES: Final = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
)
# Statuses under which a subscription grants its tier's downloads.
ENTITLING_SUBSCRIPTION_STATUSES: Final = ("trialing", "active")
# Statuses under which a subscription still gives the profile its tier (past_due: in its grace).
TIER_HOLDING_SUBSCRIPTION_STATUSES: Final = ("trialing", "active", "past_due")
PURCHASE_STATUSES: Final = ("pending", "paid", "refunded")
# A past_due subscription keeps its downloads this long after its period ends (billing_settings).
PAST_DUE_GRACE_DEFAULT_DAYS: Final = 3
PAST_DUE_GRACE_MAX_DAYS: Final = 90
PUBLISHED_PRODUCT_STATUS: Final = "active"

WEBHOOK_PROVIDERS: Final = ("stripe", "clerk")

# Licence types of a digital product and what each allows.
#   personal:   one seat, no redistribution, sold one at a time (no volume tiers)
#   team:       2 to 25 seats, no redistribution, volume tiers allowed
#   business:   1 to 1000 seats, no redistribution, volume tiers allowed
#   enterprise: unlimited seats (NULL), redistribution allowed, priced per deal (no volume tiers)
LICENSE_TYPES: Final = ("personal", "team", "business", "enterprise")
TIERED_LICENSE_TYPES: Final = ("team", "business")
LICENSE_SEATS: Final = {
    "personal": (1, 1),
    "team": (2, 25),
    "business": (1, 1000),
}
MAX_LICENSE_DURATION_DAYS: Final = 3650
CART_MAX_QUANTITY: Final = 1000

CHAT_ROLES: Final = ("user", "assistant", "system")
CONVERSATION_STATUSES: Final = ("open", "resolved", "archived")
KNOWLEDGE_CONTENT_TYPES: Final = ("faq", "guide", "policy", "product", "troubleshooting")
EMBEDDING_DIMENSIONS: Final = 384


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_matches(column: str, pattern: str) -> str:
    """`column ~ 'pattern'` for a CHECK constraint (PostgreSQL's `~` with ^...$ anchors matches
    exactly what Python's re.fullmatch does for these ASCII patterns)."""
    return f"{column} ~ {sql_literal(pattern)}"


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """`column IN ('a', 'b')` for a CHECK constraint built from one of the tuples above."""
    quoted = ", ".join(sql_literal(value) for value in values)
    return f"{column} IN ({quoted})"
