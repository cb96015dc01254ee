"""The marketplace's rules as data: one source for the database constraints (models) and the
input validation, so that the two cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

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
EXTERNAL_ID_MIN_LENGTH: Final = 6
EXTERNAL_ID_MAX_LENGTH: Final = 64
EXTERNAL_ID_CHARACTER: Final = "[A-Za-z0-9]"
EXTERNAL_ID_BODY: Final = (
    rf"{EXTERNAL_ID_CHARACTER}{{{EXTERNAL_ID_MIN_LENGTH},{EXTERNAL_ID_MAX_LENGTH}}}"
)
# Stripe documents its ids as opaque strings of up to 255 characters that may grow, and issues
# ids with more underscores than the prefix's (a Checkout Session's `cs_test_a1YS...`, a
# subscription item's `si_...`): the prefix, then letters, digits and underscores.
STRIPE_ID_MAX_LENGTH: Final = 255
STRIPE_ID_CHARACTER: Final = "[A-Za-z0-9_]"


def stripe_id_pattern(kind: str) -> str:
    """The kind's prefix, `_`, then letters, digits or underscores, at most STRIPE_ID_MAX_LENGTH
    characters in all (the look-ahead bounds the whole id)."""
    whole = rf"(?={STRIPE_ID_CHARACTER}{{1,{STRIPE_ID_MAX_LENGTH}}}$)"
    return rf"^{whole}{STRIPE_ID_PREFIXES[kind]}_{STRIPE_ID_CHARACTER}+$"


# A subscription's price: a Stripe price id, or on subscriptions older than Stripe's Prices, the
# legacy Plan's id, which its creator could choose (`gold21323`, `pro-monthly`): Stripe's Prices
# API accepts those as price ids too. Any id a person could have chosen in letters, digits, `_`,
# `-` and `.`, starting with a letter or digit.
SUBSCRIPTION_PRICE_ID_PATTERN: Final = (
    rf"^(?=.{{1,{STRIPE_ID_MAX_LENGTH}}}$)[A-Za-z0-9][A-Za-z0-9_.-]*$"
)


CLERK_USER_ID_PATTERN: Final = rf"^user_{EXTERNAL_ID_BODY}$"

# Analytics event names: a lowercase letter, then 1 to 63 of [a-z0-9_.].
EVENT_TYPE_PATTERN: Final = r"^[a-z][a-z0-9_.]{1,63}$"
EVENT_TYPE_MAX_LENGTH: Final = 64

# Emails are stored in their normalized form: ASCII (internationalized domains as punycode),
# lowercase, dot-atom local part, a domain of at least two labels. email-validator checks the full
# syntax of what people type; this is what the database guarantees for what is stored.
_EMAIL_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
EMAIL_PATTERN: Final = rf"^{_EMAIL_ATOM}(\.{_EMAIL_ATOM})*@{_EMAIL_LABEL}(\.{_EMAIL_LABEL})+$"
EMAIL_MAX_LENGTH: Final = 254

# Money: plain `numeric` in the database with CHECKs (0 < amount <= PRICE_MAX, scale <= 2), Decimal
# in Python. Not numeric(12, 2) on purpose: that type rounds 19.999 to 20.00 silently, where the
# CHECK refuses it as the Python rule does. Only two-decimal currencies are sold.
PRICE_SCALE: Final = 2
PRICE_MAX: Final = Decimal("1000000.00")
CURRENCIES: Final = ("AUD", "CAD", "CHF", "DKK", "EUR", "GBP", "NOK", "NZD", "SEK", "SGD", "USD")

# Subscription tiers, lowest first: a product included in a tier is included in every higher one.
SUBSCRIPTION_TIERS: Final = ("free", "starter", "professional", "enterprise")
PAID_SUBSCRIPTION_TIERS: Final = SUBSCRIPTION_TIERS[1:]

PRODUCT_STATUSES: Final = ("draft", "active", "archived")


@dataclass(frozen=True)
class SubscriptionStatus:
    """One state of Stripe's subscription status machine, and what it means here."""

    entitles: Literal["yes", "in_grace", "no"]
    """Whether it grants its tier's downloads: always, only within the past_due grace after its
    period ends (billing_settings.past_due_grace), or never."""
    next: tuple[str, ...]
    """The statuses Stripe can move it to; none: terminal (Stripe never changes it again)."""

    @property
    def terminal(self) -> bool:
        return not self.next


# Stripe's subscription statuses (docs.stripe.com/billing/subscriptions/overview): a first
# payment that fails leaves `incomplete`, which becomes `incomplete_expired` after 23 hours;
# `canceled` and `incomplete_expired` are final; `unpaid` and `paused` keep the subscription but
# collect nothing and grant nothing.
SUBSCRIPTION_MACHINE: Final[dict[str, SubscriptionStatus]] = {
    "incomplete": SubscriptionStatus(
        "no", ("active", "trialing", "incomplete_expired", "canceled")
    ),
    "incomplete_expired": SubscriptionStatus("no", ()),
    "trialing": SubscriptionStatus("yes", ("active", "past_due", "unpaid", "paused", "canceled")),
    "active": SubscriptionStatus("yes", ("trialing", "past_due", "unpaid", "paused", "canceled")),
    "past_due": SubscriptionStatus("in_grace", ("active", "unpaid", "paused", "canceled")),
    "canceled": SubscriptionStatus("no", ()),
    "unpaid": SubscriptionStatus("no", ("active", "past_due", "canceled")),
    "paused": SubscriptionStatus("no", ("active", "trialing", "canceled")),
}
SUBSCRIPTION_STATUSES: Final = tuple(SUBSCRIPTION_MACHINE)
TERMINAL_SUBSCRIPTION_STATUSES: Final = tuple(
    name for name, status in SUBSCRIPTION_MACHINE.items() if status.terminal
)
# Statuses under which a subscription grants its tier's downloads.
ENTITLING_SUBSCRIPTION_STATUSES: Final = tuple(
    name for name, status in SUBSCRIPTION_MACHINE.items() if status.entitles == "yes"
)
# The one status that entitles only within the grace period after its period ends.
(GRACE_SUBSCRIPTION_STATUS,) = (
    name for name, status in SUBSCRIPTION_MACHINE.items() if status.entitles == "in_grace"
)
# Statuses under which a subscription still gives the profile its tier (past_due: in its grace).
TIER_HOLDING_SUBSCRIPTION_STATUSES: Final = (
    *ENTITLING_SUBSCRIPTION_STATUSES,
    GRACE_SUBSCRIPTION_STATUS,
)
# Statuses under which a subscription counts in MRR (Stripe Billing: trials are not revenue yet;
# past_due is still owed).
MRR_SUBSCRIPTION_STATUSES: Final = ("active", "past_due")
PURCHASE_STATUSES: Final = ("pending", "paid", "refunded")
# A past_due subscription keeps its downloads this long after its period ends (billing_settings).
PAST_DUE_GRACE_DEFAULT_DAYS: Final = 3
PAST_DUE_GRACE_MAX_DAYS: Final = 90
PUBLISHED_PRODUCT_STATUS: Final = "active"

WEBHOOK_PROVIDERS: Final = ("stripe", "clerk")
# What became of a stored provider event: applied (it changed the mirror's state), recorded (a
# payment, invoice or refund noted against what it belongs to, no state changed), ignored (a type
# or an object afilo-db does not act on; the reason says which), deferred (it needs something not
# received yet: answered 409 so that the provider retries), unresolved (still deferred after
# WEBHOOK_DEFER_MAX_ATTEMPTS deliveries or WEBHOOK_DEFER_MAX_HOURS: answered 200 and parked for
# `afilo-db webhooks unresolved`).
WEBHOOK_OUTCOMES: Final = ("applied", "recorded", "ignored", "deferred", "unresolved")
WEBHOOK_DEFER_MAX_ATTEMPTS: Final = 8
WEBHOOK_DEFER_MAX_HOURS: Final = 24

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

# Text a person reads (titles, tags): no leading or trailing whitespace, where whitespace is
# Unicode's White_Space property (what Python's and pydantic's strip() remove, bar the ASCII
# separators \x1c-\x1f, which are control characters and refused anyway) ...
TEXT_WHITESPACE: Final = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# ... and no character a reader cannot see or that reorders what they see: the control characters
# (Unicode category Cc: C0, DEL, C1) and the bidirectional embeddings, overrides and isolates
# ("Trojan Source"). This is the one rule for text a buyer sees (titles, tags, descriptions,
# the chat bot's passages); text of several lines keeps its tabs and line breaks. Other format
# characters stay allowed, since languages and emoji need them (ZWJ, ZWNJ, soft hyphen), and so
# do the bidirectional marks (LRM, RLM, ALM), which right-to-left text needs and which reorder
# nothing around them; unpaired surrogates cannot be stored at all.
UNPRINTABLE_RANGES: Final = ((0x00, 0x1F), (0x7F, 0x9F), (0x202A, 0x202E), (0x2066, 0x2069))
MULTILINE_ALLOWED: Final = "\t\n\r"
TITLE_MAX_LENGTH: Final = 200

CHAT_ROLES: Final = ("user", "assistant", "system")
CONVERSATION_STATUSES: Final = ("open", "resolved", "archived")
KNOWLEDGE_CONTENT_TYPES: Final = (
    "faq", "guide", "policy", "product", "troubleshooting", "docs", "licence"
)  # fmt: skip
EMBEDDING_DIMENSIONS: Final = 384

# Where an analytics event came from.
EVENT_SOURCES: Final = ("web", "app", "email", "api")


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_matches(column: str, pattern: str) -> str:
    """`column ~ 'pattern'` for a CHECK constraint (PostgreSQL's `~` with ^...$ anchors matches
    exactly what Python's re.fullmatch does for these ASCII patterns)."""
    return f"{column} ~ {sql_literal(pattern)}"


# The CHECKs below accept exactly the strings of the patterns above, written without their
# bounded repetition ({6,64}): PostgreSQL's regular expressions run a bounded repetition an
# order of magnitude slower than `+` with the length compared apart (docs/measured-choices.md),
# and every COPY, import and restore pays it on every row.


def sql_external_id_check(column: str, prefix: str) -> str:
    """`prefix`_ then EXTERNAL_ID_MIN_LENGTH to EXTERNAL_ID_MAX_LENGTH letters or digits."""
    shortest = len(prefix) + 1 + EXTERNAL_ID_MIN_LENGTH
    longest = len(prefix) + 1 + EXTERNAL_ID_MAX_LENGTH
    return (
        f"{sql_matches(column, f'^{prefix}_{EXTERNAL_ID_CHARACTER}+$')}"
        f" AND length({column}) BETWEEN {shortest} AND {longest}"
    )


def sql_stripe_id_check(column: str, kind: str) -> str:
    """stripe_id_pattern(kind) as a CHECK: the prefix, `_`, then letters, digits or underscores,
    at most STRIPE_ID_MAX_LENGTH characters in all."""
    return (
        f"{sql_matches(column, f'^{STRIPE_ID_PREFIXES[kind]}_{STRIPE_ID_CHARACTER}+$')}"
        f" AND length({column}) <= {STRIPE_ID_MAX_LENGTH}"
    )


def sql_subscription_price_id_check(column: str) -> str:
    """SUBSCRIPTION_PRICE_ID_PATTERN as a CHECK."""
    return (
        f"{sql_matches(column, '^[A-Za-z0-9][A-Za-z0-9_.-]*$')}"
        f" AND length({column}) <= {STRIPE_ID_MAX_LENGTH}"
    )


def sql_event_type_check(column: str) -> str:
    """EVENT_TYPE_PATTERN: at least two characters by the pattern, at most the length."""
    return (
        f"{sql_matches(column, '^[a-z][a-z0-9_.]+$')}"
        f" AND length({column}) <= {EVENT_TYPE_MAX_LENGTH}"
    )


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """`column IN ('a', 'b')` for a CHECK constraint built from one of the tuples above."""
    quoted = ", ".join(sql_literal(value) for value in values)
    return f"{column} IN ({quoted})"


def unprintable_ranges(multiline: bool = False) -> list[tuple[int, int]]:
    """UNPRINTABLE_RANGES, less MULTILINE_ALLOWED for text of several lines, NUL left out (see
    unprintable_pattern)."""
    allowed = {ord(character) for character in MULTILINE_ALLOWED} if multiline else set()
    ranges: list[tuple[int, int]] = []
    for low, high in UNPRINTABLE_RANGES:
        start = None
        for code in range(max(low, 0x01), high + 2):
            if code <= high and code not in allowed:
                start = code if start is None else start
            elif start is not None:
                ranges.append((start, code - 1))
                start = None
    return ranges


def unprintable_pattern(multiline: bool = False) -> str:
    """A regular expression character class of UNPRINTABLE_RANGES, as both Python's `re` and
    PostgreSQL's regular expressions read it (\\uXXXX escapes). NUL is left to PostgreSQL's text
    type, which cannot hold it at all (and whose regular expressions refuse to name it)."""
    ranges = unprintable_ranges(multiline)
    return "[" + "".join(f"\\u{low:04x}-\\u{high:04x}" for low, high in ranges) + "]"


def sql_buyer_text_check(column: str) -> str:
    """Text of several lines that a buyer sees (a description, a passage) as a CHECK: nothing
    unprintable but tabs and line breaks."""
    return f"{column} !~ {sql_literal(unprintable_pattern(multiline=True))}"


def sql_unicode_literal(value: str) -> str:
    """`value` as a PostgreSQL Unicode escape string, U&'\\0009...', whatever it holds."""
    return "U&'" + "".join(f"\\{ord(character):04x}" for character in value) + "'"


def sql_title_check(column: str) -> str:
    """The title rule as a CHECK: stored trimmed of TEXT_WHITESPACE, 1 to TITLE_MAX_LENGTH
    characters, nothing unprintable."""
    return (
        f"{column} = btrim({column}, {sql_unicode_literal(TEXT_WHITESPACE)})"
        f" AND length({column}) BETWEEN 1 AND {TITLE_MAX_LENGTH}"
        f" AND {column} !~ {sql_literal(unprintable_pattern())}"
    )


def sql_printable_array(column: str) -> str:
    """Every element of a text[] column free of unprintable characters (NULL elements aside)."""
    return f"array_to_string({column}, '') !~ {sql_literal(unprintable_pattern())}"


def sql_flat_array(column: str) -> str:
    """A text[] column one-dimensional (or empty) with no NULL element: a list of strings, what
    the pages' typed documents declare (a NULL element made the product unreadable)."""
    return (
        f"CASE WHEN coalesce(array_ndims({column}), 1) = 1"
        f" THEN array_position({column}, NULL) IS NULL ELSE false END"
    )


def priced(quantity: str) -> tuple[str, str]:
    """The volume-tier price rule, once (quotes and the cart both price with it): a quantity of a
    variant costs the unit price of the tier whose range covers the quantity, else the variant's
    own price. Returns (the unit price expression, the join that finds the tier) for a query over
    `product_variants v`, where `quantity` is the SQL expression of the quantity (a column or a
    bound parameter)."""
    return (
        "coalesce(t.unit_price, v.price)",
        "LEFT JOIN product_pricing_tiers t"
        f" ON t.variant_id = v.id AND t.quantity_range @> ({quantity})::integer",
    )
