"""Input schemas: what callers may send to the services, checked all at once."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from afilo_db import rules
from afilo_db.validation import checks
from afilo_db.validation.types import (
    BuyerText,
    ClerkUserId,
    Currency,
    DurationDays,
    Email,
    Handle,
    LicenseType,
    Price,
    ProductStatus,
    Sku,
    SubscriptionTier,
    Tag,
    Title,
    Uuid,
    stripe_id,
)


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class PricingTierInput(Input):
    min_quantity: int = Field(ge=1)
    max_quantity: int | None = Field(default=None, ge=1)
    unit_price: Price


class TieredLicenseInput(Input):
    """A licence type with its volume tiers, which must suit it (see checks.tiers_problem)."""

    license_type: LicenseType
    tiers: tuple[PricingTierInput, ...] = ()

    @field_validator("tiers")
    @classmethod
    def _tiers_fit(
        cls, tiers: tuple[PricingTierInput, ...], info: ValidationInfo
    ) -> tuple[PricingTierInput, ...]:
        license_type = info.data.get("license_type")
        if license_type is None:
            return tiers
        ranges = [(tier.min_quantity, tier.max_quantity) for tier in tiers]
        problem = checks.tiers_problem(license_type, ranges)
        if problem is not None:
            raise PydanticCustomError("afilo_rule", problem)
        return tiers


class VariantInput(TieredLicenseInput):
    sku: Sku
    title: Title
    price: Price
    currency: Currency = "USD"
    stripe_price_id: stripe_id("price") | None = None  # type: ignore[valid-type]
    available_for_sale: bool = True
    # Validated even when absent: a personal licence defaults to its one seat.
    seats: int | None = Field(default=None, validate_default=True)
    duration_days: DurationDays = None
    redistribution: bool = False

    @field_validator("seats", mode="before")
    @classmethod
    def _default_seats(cls, seats: Any, info: ValidationInfo) -> Any:
        """A personal licence is one seat; nobody should have to say so."""
        if seats is None and info.data.get("license_type") == "personal":
            return 1
        return seats

    @field_validator("seats")
    @classmethod
    def _seats_match_license(cls, seats: int | None, info: ValidationInfo) -> int | None:
        license_type = info.data.get("license_type")
        if license_type is None:
            return seats
        problem = checks.license_terms_problem(license_type, seats, redistribution=False)
        if problem is not None:
            raise PydanticCustomError("afilo_rule", problem)
        return seats

    @field_validator("redistribution")
    @classmethod
    def _redistribution_allowed(cls, redistribution: bool, info: ValidationInfo) -> bool:
        license_type = info.data.get("license_type")
        if redistribution and license_type is not None and license_type != "enterprise":
            raise PydanticCustomError(
                "afilo_rule",
                f"a {license_type} licence does not allow redistribution (only enterprise does)",
            )
        return redistribution


class ProductInput(Input):
    handle: Handle
    title: Title
    description: BuyerText = Field(default="", max_length=20_000)
    tags: tuple[Tag, ...] = ()
    tech_stack: tuple[Tag, ...] = ()
    status: ProductStatus = "draft"
    stripe_product_id: stripe_id("product") | None = None  # type: ignore[valid-type]
    included_in_tier: SubscriptionTier | None = None
    # Validated even when absent: an active product without variants is refused.
    variants: tuple[VariantInput, ...] = Field(default=(), validate_default=True)

    @field_validator("variants")
    @classmethod
    def _skus_unique(cls, variants: tuple[VariantInput, ...]) -> tuple[VariantInput, ...]:
        skus = [variant.sku for variant in variants]
        duplicates = sorted({sku for sku in skus if skus.count(sku) > 1})
        if duplicates:
            raise PydanticCustomError(
                "afilo_rule", f"each variant needs its own sku; repeated: {', '.join(duplicates)}"
            )
        return variants

    @field_validator("variants")
    @classmethod
    def _active_is_sellable(
        cls, variants: tuple[VariantInput, ...], info: ValidationInfo
    ) -> tuple[VariantInput, ...]:
        if info.data.get("status") == "active" and not any(
            variant.available_for_sale for variant in variants
        ):
            raise PydanticCustomError("afilo_rule", checks.SELLABLE_RULE)
        return variants


class ProductChanges(Input):
    """A partial update of a product's own fields; absent fields stay as they are."""

    title: Title | None = None
    description: BuyerText | None = Field(default=None, max_length=20_000)
    tags: tuple[Tag, ...] | None = None
    tech_stack: tuple[Tag, ...] | None = None
    status: ProductStatus | None = None
    stripe_product_id: stripe_id("product") | None = None  # type: ignore[valid-type]
    included_in_tier: SubscriptionTier | None = None


class VariantChanges(Input):
    """A partial update of a variant; the licence rules are checked against the merged result."""

    title: Title | None = None
    price: Price | None = None
    currency: Currency | None = None
    stripe_price_id: stripe_id("price") | None = None  # type: ignore[valid-type]
    available_for_sale: bool | None = None
    seats: int | None = None
    duration_days: DurationDays = None
    redistribution: bool | None = None


class UserProfileInput(Input):
    clerk_user_id: ClerkUserId
    email: Email
    display_name: str | None = Field(default=None, max_length=200)
    subscription_tier: SubscriptionTier = "free"
    stripe_customer_id: stripe_id("customer") | None = None  # type: ignore[valid-type]


class CartLineInput(Input):
    variant_id: Uuid
    quantity: int = Field(default=1, ge=1, le=rules.CART_MAX_QUANTITY)


class PriceQuoteInput(Input):
    variant_id: Uuid
    quantity: int = Field(ge=1, le=1_000_000)


class ProductFilters(Input):
    """Catalog listing filters; every one is optional and they combine with AND."""

    tags: tuple[str, ...] = ()
    tech_stack: tuple[str, ...] = ()
    collection: Handle | None = None
    license_type: LicenseType | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    status: ProductStatus | None = "active"


__all__ = [
    "CartLineInput",
    "PriceQuoteInput",
    "PricingTierInput",
    "ProductChanges",
    "ProductFilters",
    "ProductInput",
    "UserProfileInput",
    "VariantChanges",
    "VariantInput",
]
