"""Annotated pydantic types for the marketplace's values, each backed by a predicate in checks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from afilo_db import rules
from afilo_db.validation import checks


def _enforce(check: Callable[[Any], str | None]) -> Callable[[Any], Any]:
    def validator(value: Any) -> Any:
        problem = check(value)
        if problem is not None:
            raise PydanticCustomError("afilo_rule", problem)
        return value

    return validator


def _to_decimal(value: Any) -> Decimal:
    """Money comes in as a Decimal, an int or a decimal string; a float has already lost cents."""
    if isinstance(value, bool | float):
        raise PydanticCustomError(
            "afilo_rule", "must be a decimal string or an integer, never a float"
        )
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise PydanticCustomError("afilo_rule", "must be a number, like 19.99") from None
    raise PydanticCustomError("afilo_rule", "must be a decimal string or an integer")


def _normalize_email(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("afilo_rule", checks.EMAIL_RULE)
    try:
        result = validate_email(value.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        raise PydanticCustomError("afilo_rule", f"{checks.EMAIL_RULE}: {error}") from None
    normalized = (result.ascii_email or result.normalized).lower()
    problem = checks.stored_email_problem(normalized)
    if problem is not None:
        raise PydanticCustomError("afilo_rule", problem)
    return normalized


def _strict_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise PydanticCustomError(
        "afilo_rule", "must be a UUID, like 0194f0b2-7c1e-7d3a-9f00-1a2b3c4d5e6f"
    )


def stripe_id(kind: str) -> Any:
    return Annotated[
        str, AfterValidator(_enforce(lambda value: checks.stripe_id_problem(kind, value)))
    ]


def choice(values: tuple[str, ...]) -> Any:
    return Annotated[
        str, AfterValidator(_enforce(lambda value: checks.choice_problem(value, values)))
    ]


def _stripped_title(value: Any) -> Any:
    return checks.strip_title(value) if isinstance(value, str) else value


# Stripped of the same whitespace the database's CHECK trims (not only what str_strip_whitespace
# knows), then held to the same rule.
Title = Annotated[
    str, BeforeValidator(_stripped_title), AfterValidator(_enforce(checks.title_problem))
]
Tag = Annotated[str, AfterValidator(_enforce(checks.printable_problem))]
BuyerText = Annotated[str, AfterValidator(_enforce(checks.buyer_text_problem))]
Handle = Annotated[str, AfterValidator(_enforce(checks.handle_problem))]
Sku = Annotated[str, AfterValidator(_enforce(checks.sku_problem))]
ClerkUserId = Annotated[str, AfterValidator(_enforce(checks.clerk_user_id_problem))]
Email = Annotated[str, BeforeValidator(_normalize_email)]
Price = Annotated[
    Decimal, BeforeValidator(_to_decimal), AfterValidator(_enforce(checks.price_problem))
]
Currency = Annotated[str, AfterValidator(_enforce(checks.currency_problem))]
Uuid = Annotated[uuid.UUID, BeforeValidator(_strict_uuid)]
LicenseType = choice(rules.LICENSE_TYPES)
SubscriptionTier = choice(rules.SUBSCRIPTION_TIERS)
PaidSubscriptionTier = choice(rules.PAID_SUBSCRIPTION_TIERS)
SubscriptionId = stripe_id("subscription")
InvoiceId = stripe_id("invoice")
EventSource = choice(rules.EVENT_SOURCES)
ProductStatus = choice(rules.PRODUCT_STATUSES)
DurationDays = Annotated[int | None, AfterValidator(_enforce(checks.duration_problem))]
