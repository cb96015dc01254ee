"""The rules as predicates: each returns what is wrong with a value, or None.

These mirror the database constraints one for one (the property tests in tests/validation prove
they accept exactly the same values); the input schemas use them, so a person reads the same
sentence whether the rule was caught in Python or, by translation, in the database.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from decimal import Decimal

from afilo_db import rules

HANDLE_RULE = (
    "must be a lowercase URL-safe slug: letters a-z, digits and single hyphens between words, "
    f"at most {rules.HANDLE_MAX_LENGTH} characters"
)
SKU_RULE = (
    "must be uppercase letters A-Z and digits in groups joined by single hyphens, "
    f"at most {rules.SKU_MAX_LENGTH} characters"
)
EMAIL_RULE = "must be a valid email address (ASCII local part; stored lowercase)"
PRICE_RULE = (
    f"must be a positive amount of at most {rules.PRICE_MAX} with at most "
    f"{rules.PRICE_SCALE} decimal places"
)
AMOUNT_RULE = (
    f"must be an amount from 0 to {rules.PRICE_MAX} with at most {rules.PRICE_SCALE} decimal places"
)
CURRENCY_RULE = f"must be one of the currencies sold: {', '.join(rules.CURRENCIES)}"
DURATION_RULE = (
    f"must be empty (perpetual) or a number of days from 1 to {rules.MAX_LICENSE_DURATION_DAYS}"
)
TITLE_RULE = (
    f"must hold 1 to {rules.TITLE_MAX_LENGTH} characters besides surrounding whitespace, and no "
    "control characters or bidirectional overrides"
)
PRINTABLE_RULE = "must not contain control characters or bidirectional overrides"
BUYER_TEXT_RULE = (
    "must not contain control characters (tabs and line breaks aside) or bidirectional overrides"
)
FLAT_LIST_RULE = "must be lists of text with no empty (NULL) element"
SELLABLE_RULE = (
    "an active product needs at least one variant available for sale; add one, or make it "
    "draft or archived"
)
CART_QUANTITY_RULE = f"must be a whole number from 1 to {rules.CART_MAX_QUANTITY}"


_UNPRINTABLE = re.compile(rules.unprintable_pattern())
_UNPRINTABLE_IN_LINES = re.compile(rules.unprintable_pattern(multiline=True))


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _fullmatch(pattern: str, value: str) -> bool:
    return _compiled(pattern).fullmatch(value) is not None


def one_of_rule(values: Sequence[str]) -> str:
    return "must be one of: " + ", ".join(values)


def external_id_rule(prefix: str) -> str:
    return f"must look like {prefix}_ followed by 6 to 64 letters or digits"


def stripe_id_rule(prefix: str) -> str:
    return (
        f"must look like {prefix}_ followed by letters, digits or underscores,"
        f" at most {rules.STRIPE_ID_MAX_LENGTH} characters in all"
    )


def strip_title(value: str) -> str:
    """A title as it is stored: without surrounding whitespace (rules.TEXT_WHITESPACE)."""
    return value.strip(rules.TEXT_WHITESPACE)


def printable_problem(value: str) -> str | None:
    unprintable = "\x00" in value or _UNPRINTABLE.search(value)
    return PRINTABLE_RULE if unprintable else None


def buyer_text_problem(value: str) -> str | None:
    """What the database's buyer-text CHECK says of text of several lines."""
    unprintable = "\x00" in value or _UNPRINTABLE_IN_LINES.search(value)
    return BUYER_TEXT_RULE if unprintable else None


def without_unprintable(value: str) -> str:
    """Text of several lines from a document held to the buyer-text rule: a control character
    becomes a space (a form feed between pages separates words), a bidirectional override is
    dropped (it only reorders what surrounds it)."""
    return _UNPRINTABLE_IN_LINES.sub(_replacement, value.replace("\x00", " "))


def _replacement(found: re.Match[str]) -> str:
    return " " if found[0] < "\xa0" else ""


def title_problem(value: str) -> str | None:
    """What the database's title CHECK says of an already stripped title."""
    ok = 1 <= len(value) <= rules.TITLE_MAX_LENGTH and printable_problem(value) is None
    return None if ok and value == strip_title(value) else TITLE_RULE


def handle_problem(value: str) -> str | None:
    ok = _fullmatch(rules.HANDLE_PATTERN, value) and len(value) <= rules.HANDLE_MAX_LENGTH
    return None if ok else HANDLE_RULE


def sku_problem(value: str) -> str | None:
    ok = _fullmatch(rules.SKU_PATTERN, value) and len(value) <= rules.SKU_MAX_LENGTH
    return None if ok else SKU_RULE


def stripe_id_problem(kind: str, value: str) -> str | None:
    if _fullmatch(rules.stripe_id_pattern(kind), value):
        return None
    return stripe_id_rule(rules.STRIPE_ID_PREFIXES[kind])


SUBSCRIPTION_PRICE_ID_RULE = (
    "must be a Stripe price id or a legacy plan's id: letters, digits, _, - or ., starting with"
    f" a letter or digit, at most {rules.STRIPE_ID_MAX_LENGTH} characters"
)


def subscription_price_id_problem(value: str) -> str | None:
    ok = _fullmatch(rules.SUBSCRIPTION_PRICE_ID_PATTERN, value)
    return None if ok else SUBSCRIPTION_PRICE_ID_RULE


def clerk_user_id_problem(value: str) -> str | None:
    return None if _fullmatch(rules.CLERK_USER_ID_PATTERN, value) else external_id_rule("user")


def svix_message_id_problem(value: str) -> str | None:
    """Clerk's webhook deliveries (Svix) are identified by their message id."""
    ok = _fullmatch(rf"^msg_{rules.EXTERNAL_ID_BODY}$", value)
    return None if ok else external_id_rule("msg")


def stored_email_problem(value: str) -> str | None:
    ok = _fullmatch(rules.EMAIL_PATTERN, value) and len(value) <= rules.EMAIL_MAX_LENGTH
    return None if ok else EMAIL_RULE


def _has_valid_scale(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -rules.PRICE_SCALE


def price_problem(value: Decimal) -> str | None:
    ok = value.is_finite() and 0 < value <= rules.PRICE_MAX and _has_valid_scale(value)
    return None if ok else PRICE_RULE


def currency_problem(value: str) -> str | None:
    return None if value in rules.CURRENCIES else CURRENCY_RULE


def choice_problem(value: str, allowed: Sequence[str]) -> str | None:
    return None if value in allowed else one_of_rule(allowed)


def license_terms_problem(license_type: str, seats: int | None, redistribution: bool) -> str | None:
    """What the licence type allows: see rules.LICENSE_SEATS and the enterprise exception."""
    if license_type == "enterprise":
        return (
            None
            if seats is None
            else "an enterprise licence has unlimited seats: leave seats empty"
        )
    low, high = rules.LICENSE_SEATS[license_type]
    if seats is None or not low <= seats <= high:
        span = f"exactly {low}" if low == high else f"from {low} to {high}"
        return f"a {license_type} licence has {span} seats"
    if redistribution:
        return f"a {license_type} licence does not allow redistribution (only enterprise does)"
    return None


def duration_problem(days: int | None) -> str | None:
    ok = days is None or 1 <= days <= rules.MAX_LICENSE_DURATION_DAYS
    return None if ok else DURATION_RULE


def tiers_problem(license_type: str, ranges: Sequence[tuple[int, int | None]]) -> str | None:
    """Volume tiers: only for licence types sold by quantity; ranges from 1, no overlap, no gap."""
    if not ranges:
        return None
    if license_type not in rules.TIERED_LICENSE_TYPES:
        return (
            f"a {license_type} licence is sold one at a time and has no volume tiers "
            f"(tiers are for: {', '.join(rules.TIERED_LICENSE_TYPES)})"
        )
    expected: int | None = 1
    for low, high in sorted(ranges, key=lambda bounds: bounds[0]):
        if low < 1 or (high is not None and high < low):
            return f"tier {low}-{high or ''}: quantities start at 1 and a maximum is not below its minimum"
        if expected is None or low < expected:
            return f"tier starting at {low} overlaps the tier before it"
        if low > expected:
            return f"tiers must cover quantities from 1 without gaps: nothing covers {expected}-{low - 1}"
        expected = None if high is None else high + 1
    return None
