"""Catalog: products, their licensing variants, volume pricing tiers and collections."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    FetchedValue,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    UniqueConstraint,
    literal_column,
)
from sqlalchemy.dialects.postgresql import ARRAY, INT4RANGE, TEXT, ExcludeConstraint, Range
from sqlalchemy.orm import Mapped, mapped_column, relationship

from afilo_db import rules
from afilo_db.models.base import Base, CreatedAt, Currency, UpdatedAt, UuidPk, performance_critical


def _license_terms_check() -> str:
    seat_rules = " OR ".join(
        f"(license_type = '{kind}' AND seats IS NOT NULL AND seats BETWEEN {low} AND {high}"
        " AND NOT redistribution)"
        for kind, (low, high) in rules.LICENSE_SEATS.items()
    )
    return f"{seat_rules} OR (license_type = 'enterprise' AND seats IS NULL)"


def _price_checks(column: str) -> tuple[CheckConstraint, CheckConstraint]:
    return (
        CheckConstraint(f"{column} > 0 AND {column} <= {rules.PRICE_MAX}", name=f"{column}_range"),
        CheckConstraint(f"scale({column}) <= {rules.PRICE_SCALE}", name=f"{column}_scale"),
    )


def _title_check() -> CheckConstraint:
    return CheckConstraint(rules.sql_title_check("title"), name="title_format")


def _handle_title_and_description_checks() -> tuple[CheckConstraint, ...]:
    """What products and collections share: a URL-safe handle, a title that is not blank, a
    description held to the rule of text a buyer sees."""
    return (
        CheckConstraint(
            f"{rules.sql_matches('handle', rules.HANDLE_PATTERN)}"
            f" AND length(handle) <= {rules.HANDLE_MAX_LENGTH}",
            name="handle_format",
        ),
        _title_check(),
        CheckConstraint(rules.sql_buyer_text_check("description"), name="description_buyer_text"),
    )


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        *_handle_title_and_description_checks(),
        CheckConstraint(rules.sql_in("status", rules.PRODUCT_STATUSES), name="status_valid"),
        # Target of the variants' (product_id, product_status) key: see ProductVariant.
        UniqueConstraint("id", "status"),
        CheckConstraint(
            f"{rules.sql_printable_array('tags')} AND {rules.sql_printable_array('tech_stack')}",
            name="tags_printable",
        ),
        CheckConstraint(
            f"{rules.sql_flat_array('tags')} AND {rules.sql_flat_array('tech_stack')}",
            name="tags_flat_without_nulls",
        ),
        # Also, checked at commit by the constraint trigger ck_products_active_has_variant_for_sale
        # (revision 0006_data_rules): an active product has a variant available for sale.
        CheckConstraint(
            rules.sql_stripe_id_check("stripe_product_id", "product"),
            name="stripe_product_id_format",
        ),
        CheckConstraint(
            rules.sql_in("included_in_tier", rules.SUBSCRIPTION_TIERS), name="tier_valid"
        ),
        Index("ix_products_tags", "tags", postgresql_using="gin", info=performance_critical()),
        Index(
            "ix_products_tech_stack",
            "tech_stack",
            postgresql_using="gin",
            info=performance_critical(),
        ),
        Index("ix_products_status_created_at", "status", "created_at"),
    )

    id: Mapped[UuidPk]
    handle: Mapped[str] = mapped_column(unique=True, info=performance_critical())
    title: Mapped[str]
    description: Mapped[str] = mapped_column(server_default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(TEXT), server_default="{}")
    tech_stack: Mapped[list[str]] = mapped_column(ARRAY(TEXT), server_default="{}")
    status: Mapped[str] = mapped_column(server_default="draft")
    stripe_product_id: Mapped[str | None] = mapped_column(unique=True, info=performance_critical())
    # The lowest subscription tier whose subscribers may download it; NULL: purchase only.
    included_in_tier: Mapped[str | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    variants: Mapped[list[ProductVariant]] = relationship(
        back_populates="product", cascade="all, delete-orphan", passive_deletes=True
    )


class ProductVariant(Base):
    """A licensing option of a product, with its price and licence terms."""

    __tablename__ = "product_variants"
    __table_args__ = (
        CheckConstraint(
            f"sku ~ '{rules.SKU_PATTERN}' AND length(sku) <= {rules.SKU_MAX_LENGTH}",
            name="sku_format",
        ),
        CheckConstraint(
            rules.sql_in("license_type", rules.LICENSE_TYPES), name="license_type_valid"
        ),
        _title_check(),
        CheckConstraint(_license_terms_check(), name="seats_match_license"),
        CheckConstraint(
            f"duration_days IS NULL OR duration_days BETWEEN 1 AND {rules.MAX_LICENSE_DURATION_DAYS}",
            name="duration_days_range",
        ),
        *_price_checks("price"),
        CheckConstraint(rules.sql_in("currency", rules.CURRENCIES), name="currency_valid"),
        CheckConstraint(
            rules.sql_stripe_id_check("stripe_price_id", "price"), name="stripe_price_id_format"
        ),
        # The product's status, repeated so that the application's policy reads a column instead
        # of probing products for each variant; this key keeps it true, and a trigger fills it in
        # for writes that leave it out (revision 0011_variant_product_status).
        ForeignKeyConstraint(
            ["product_id", "product_status"],
            ["products.id", "products.status"],
            name="fk_product_variants_product_id_product_status",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
        # Target of the pricing tiers' (variant_id, license_type) key: see ProductPricingTier.
        UniqueConstraint("id", "license_type"),
        Index("ix_product_variants_license_type", "license_type"),
        Index("ix_product_variants_product_id_price", "product_id", "price"),
    )

    id: Mapped[UuidPk]
    product_id: Mapped[uuid.UUID]
    product_status: Mapped[str] = mapped_column(server_default=FetchedValue())
    sku: Mapped[str] = mapped_column(unique=True, info=performance_critical())
    title: Mapped[str]
    license_type: Mapped[str]
    price: Mapped[Decimal] = mapped_column(Numeric)
    currency: Mapped[Currency]
    stripe_price_id: Mapped[str | None] = mapped_column(unique=True, info=performance_critical())
    available_for_sale: Mapped[bool] = mapped_column(Boolean, server_default="true")
    seats: Mapped[int | None] = mapped_column(Integer)
    # NULL: perpetual licence.
    duration_days: Mapped[int | None] = mapped_column(Integer)
    redistribution: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    product: Mapped[Product] = relationship(back_populates="variants")
    pricing_tiers: Mapped[list[ProductPricingTier]] = relationship(
        back_populates="variant",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ProductPricingTier.min_quantity",
    )


QUANTITY_RANGE = (
    "CASE WHEN max_quantity IS NULL OR max_quantity >= min_quantity"
    " THEN int4range(min_quantity, max_quantity, '[]') END"
)


class ProductPricingTier(Base):
    """A volume tier: the unit price for quantities min_quantity..max_quantity (NULL: no upper bound).

    The tier repeats its variant's licence type through a composite foreign key, so that the
    database itself refuses tiers on licence types sold one at a time, and refuses changing a
    variant to such a type while it has tiers. Overlaps are refused by an EXCLUDE constraint;
    gaps by a deferred constraint trigger created in the baseline migration.
    """

    __tablename__ = "product_pricing_tiers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["variant_id", "license_type"],
            ["product_variants.id", "product_variants.license_type"],
            name="fk_product_pricing_tiers_variant_id_license_type",
            ondelete="CASCADE",
            onupdate="CASCADE",
        ),
        CheckConstraint(
            rules.sql_in("license_type", rules.TIERED_LICENSE_TYPES), name="license_type_tiered"
        ),
        CheckConstraint("min_quantity >= 1", name="min_quantity_positive"),
        CheckConstraint(
            "max_quantity IS NULL OR max_quantity >= min_quantity", name="max_quantity_order"
        ),
        *_price_checks("unit_price"),
        ExcludeConstraint(
            ("variant_id", "="),
            ("quantity_range", "&&"),
            name="ex_product_pricing_tiers_no_overlap",
            using="gist",
        ),
    )

    id: Mapped[UuidPk]
    variant_id: Mapped[uuid.UUID]
    license_type: Mapped[str]
    min_quantity: Mapped[int] = mapped_column(Integer)
    max_quantity: Mapped[int | None] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric)
    # NULL for reversed bounds, so that ck_..._max_quantity_order names the problem instead of
    # int4range() failing with a bare data error.
    quantity_range: Mapped[Range[int] | None] = mapped_column(
        INT4RANGE, Computed(literal_column(QUANTITY_RANGE), persisted=True)
    )
    created_at: Mapped[CreatedAt]

    variant: Mapped[ProductVariant] = relationship(back_populates="pricing_tiers")


class ProductCollection(Base):
    __tablename__ = "product_collections"
    __table_args__ = (*_handle_title_and_description_checks(),)

    id: Mapped[UuidPk]
    handle: Mapped[str] = mapped_column(unique=True)
    title: Mapped[str]
    description: Mapped[str] = mapped_column(server_default="")
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    memberships: Mapped[list[ProductCollectionProduct]] = relationship(
        back_populates="collection",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ProductCollectionProduct.position",
    )


class ProductCollectionProduct(Base):
    """Ordered membership. The position is unique per collection but checked at commit, so a
    reorder can swap positions inside one transaction."""

    __tablename__ = "product_collection_products"
    __table_args__ = (
        UniqueConstraint("collection_id", "position", deferrable=True, initially="DEFERRED"),
        CheckConstraint("position >= 0", name="position_non_negative"),
        Index("ix_product_collection_products_product_id", "product_id"),
    )

    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("product_collections.id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[CreatedAt]

    collection: Mapped[ProductCollection] = relationship(back_populates="memberships")
    product: Mapped[Product] = relationship()
