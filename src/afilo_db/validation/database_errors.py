"""Database errors in words: a constraint that still fires (raw SQL, a race, a rule only the
database can check) becomes the same error family, naming the field and the rule."""

from __future__ import annotations

import re

from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError

from afilo_db import rules
from afilo_db.errors import AfiloError, ConflictError, NotFoundError, ValidationError
from afilo_db.validation import checks

_STRIPE = {kind: checks.stripe_id_rule(prefix) for kind, prefix in rules.STRIPE_ID_PREFIXES.items()}

# Every CHECK and EXCLUDE constraint (and the tier trigger) of the schema: the field it guards and
# the rule in words. tests/validation/test_database_errors.py fails when one is missing here.
CONSTRAINT_RULES: dict[str, tuple[str, str]] = {
    "ck_products_handle_format": ("handle", checks.HANDLE_RULE),
    "ck_products_title_format": ("title", checks.TITLE_RULE),
    "ck_products_tags_printable": ("tags", f"tags and tech_stack {checks.PRINTABLE_RULE}"),
    "ck_products_description_buyer_text": ("description", checks.BUYER_TEXT_RULE),
    "ck_product_collections_description_buyer_text": ("description", checks.BUYER_TEXT_RULE),
    "ck_knowledge_base_buyer_text": ("content", f"title and content {checks.BUYER_TEXT_RULE}"),
    "ck_products_tags_flat_without_nulls": (
        "tags",
        f"tags and tech_stack {checks.FLAT_LIST_RULE}",
    ),
    "ck_products_active_has_variant_for_sale": ("variants", checks.SELLABLE_RULE),
    "ck_products_status_valid": ("status", checks.one_of_rule(rules.PRODUCT_STATUSES)),
    "ck_products_stripe_product_id_format": ("stripe_product_id", _STRIPE["product"]),
    "ck_products_tier_valid": ("included_in_tier", checks.one_of_rule(rules.SUBSCRIPTION_TIERS)),
    "ck_product_collections_handle_format": ("handle", checks.HANDLE_RULE),
    "ck_product_collections_title_format": ("title", checks.TITLE_RULE),
    "ck_product_collection_products_position_non_negative": ("position", "must be 0 or more"),
    "ck_product_variants_sku_format": ("sku", checks.SKU_RULE),
    "ck_product_variants_title_format": ("title", checks.TITLE_RULE),
    "ck_product_variants_license_type_valid": (
        "license_type",
        checks.one_of_rule(rules.LICENSE_TYPES),
    ),
    "ck_product_variants_seats_match_license": (
        "seats",
        "seats and redistribution must agree with the licence type: personal 1 seat, team 2-25, "
        "business 1-1000, none of them redistributable; enterprise unlimited (empty)",
    ),
    "ck_product_variants_duration_days_range": ("duration_days", checks.DURATION_RULE),
    "ck_product_variants_price_range": ("price", checks.PRICE_RULE),
    "ck_product_variants_price_scale": ("price", checks.PRICE_RULE),
    "ck_product_variants_currency_valid": ("currency", checks.CURRENCY_RULE),
    "ck_product_variants_stripe_price_id_format": ("stripe_price_id", _STRIPE["price"]),
    "ck_product_pricing_tiers_license_type_tiered": (
        "tiers",
        f"volume tiers are only for licence types sold by quantity: {', '.join(rules.TIERED_LICENSE_TYPES)}",
    ),
    "ck_product_pricing_tiers_min_quantity_positive": ("min_quantity", "must be 1 or more"),
    "ck_product_pricing_tiers_max_quantity_order": (
        "max_quantity",
        "must not be below min_quantity",
    ),
    "ck_product_pricing_tiers_unit_price_range": ("unit_price", checks.PRICE_RULE),
    "ck_product_pricing_tiers_unit_price_scale": ("unit_price", checks.PRICE_RULE),
    "ex_product_pricing_tiers_no_overlap": ("tiers", "volume tiers of a variant must not overlap"),
    "ck_product_pricing_tiers_contiguous": (
        "tiers",
        "volume tiers of a variant must cover quantities from 1 without gaps",
    ),
    "ck_user_profiles_clerk_user_id_format": ("clerk_user_id", checks.external_id_rule("user")),
    "ck_user_profiles_email_format": ("email", checks.EMAIL_RULE),
    "ck_user_profiles_tier_valid": (
        "subscription_tier",
        checks.one_of_rule(rules.SUBSCRIPTION_TIERS),
    ),
    "ck_user_profiles_stripe_customer_id_format": ("stripe_customer_id", _STRIPE["customer"]),
    "ck_user_subscriptions_stripe_subscription_id_format": (
        "stripe_subscription_id",
        _STRIPE["subscription"],
    ),
    "ck_user_subscriptions_stripe_price_id_format": (
        "stripe_price_id",
        checks.SUBSCRIPTION_PRICE_ID_RULE,
    ),
    "ck_user_subscriptions_tier_valid": ("tier", checks.one_of_rule(rules.SUBSCRIPTION_TIERS)),
    "ck_user_subscriptions_status_valid": (
        "status",
        checks.one_of_rule(rules.SUBSCRIPTION_STATUSES),
    ),
    "ck_user_subscriptions_amount_valid": ("amount", checks.AMOUNT_RULE),
    "ck_user_subscriptions_currency_valid": ("currency", checks.CURRENCY_RULE),
    "ck_user_subscriptions_period_order": (
        "current_period_end",
        "must be after current_period_start",
    ),
    "ck_user_subscriptions_interval_months_positive": (
        "interval_months",
        "must be more than 0 (the months one billing period spans)",
    ),
    "ck_purchases_status_valid": ("status", checks.one_of_rule(rules.PURCHASE_STATUSES)),
    "ck_purchases_quantity_positive": ("quantity", "must be 1 or more"),
    "ck_purchases_amount_valid": ("amount", checks.AMOUNT_RULE),
    "ck_purchases_currency_valid": ("currency", checks.CURRENCY_RULE),
    "ck_purchases_stripe_payment_intent_id_format": (
        "stripe_payment_intent_id",
        _STRIPE["payment_intent"],
    ),
    "ck_purchases_stripe_checkout_session_id_format": (
        "stripe_checkout_session_id",
        _STRIPE["checkout_session"],
    ),
    "ck_user_activity_log_action_length": ("action", "must be 1 to 100 characters"),
    "ck_cart_items_quantity_range": ("quantity", checks.CART_QUANTITY_RULE),
    "ck_downloads_one_entitlement": (
        "entitlement",
        "a download is allowed by exactly one subscription or one purchase",
    ),
    "ck_chat_conversations_status_valid": (
        "status",
        checks.one_of_rule(rules.CONVERSATION_STATUSES),
    ),
    "ck_chat_messages_role_valid": ("role", checks.one_of_rule(rules.CHAT_ROLES)),
    "ck_chat_messages_content_length": ("content", "must be 1 to 32,000 characters"),
    "ck_knowledge_base_content_type_valid": (
        "content_type",
        checks.one_of_rule(rules.KNOWLEDGE_CONTENT_TYPES),
    ),
    "ck_knowledge_base_title_length": ("title", "must be 1 to 300 characters"),
    "ck_knowledge_base_content_not_empty": ("content", "must not be empty"),
    "ck_knowledge_base_embedding_has_model": (
        "embedding_model",
        "is required with an embedding (and only with one)",
    ),
    "ck_knowledge_terms_passages_not_negative": ("passages", "must be 0 or more"),
    "ck_bot_analytics_counts": ("answered", "counts are 0 or more and answered <= messages"),
    "ck_bot_analytics_latency_positive": ("avg_latency_ms", "must be 0 or more"),
    "ck_bot_analytics_satisfaction_range": ("satisfaction", "must be from 1 to 5"),
    "ck_bot_analytics_passages_used_not_negative": ("passages_used", "must be 0 or more"),
    "ck_knowledge_base_chunk_index_not_negative": ("chunk_index", "must be 0 or more"),
    "ck_knowledge_base_embedding_next_has_model": (
        "embedding_next_model",
        "a next-model vector and its model name are given together or not at all",
    ),
    "ck_webhook_events_provider_valid": ("provider", checks.one_of_rule(("stripe", "clerk"))),
    "ck_webhook_events_event_id_length": ("event_id", "must be 1 to 255 characters"),
    "ck_webhook_events_outcome_valid": ("outcome", checks.one_of_rule(rules.WEBHOOK_OUTCOMES)),
    "ck_webhook_events_attempts_positive": ("attempts", "must be 1 or more"),
    "ck_webhook_refusals_provider_valid": (
        "provider",
        checks.one_of_rule(rules.WEBHOOK_PROVIDERS),
    ),
    "ck_webhook_refusals_status_http_error": ("status", "must be an HTTP error, 400 to 599"),
    "ck_webhook_refusals_deliveries_positive": ("deliveries", "must be 1 or more"),
    "ck_billing_settings_one_row": ("singleton", "there is one row of billing settings"),
    "ck_billing_settings_past_due_grace_range": (
        "past_due_grace",
        "must be from 0 to 90 days",
    ),
    "ck_analytics_rollup_state_single_row": ("id", "there is one row of rollup state"),
    "ck_analytics_funnel_daily_steps_narrow": (
        "purchased",
        "counts are 0 or more and each funnel step is at most the one before it",
    ),
    "ck_analytics_payments_kind_valid": ("kind", "must be one_off, recurring or refund"),
    "ck_analytics_payments_amount_positive": ("amount", "must be more than 0"),
    "ck_events_event_type_format": (
        "event_type",
        "must be lowercase words joined by dots or underscores, like cart.item_added",
    ),
}

_KEY_DETAIL = re.compile(r"Key \((?P<columns>[^)]*)\)=\((?P<values>.*)\)")


def _describe_key(detail: str | None) -> tuple[str, str]:
    match = _KEY_DETAIL.search(detail or "")
    if match is None:
        return "value", ""
    return match["columns"], match["values"]


def translate(error: DBAPIError | pg_errors.Error) -> AfiloError | None:
    """The afilo error for a constraint violation, or None for anything else (let it raise)."""
    original = error.orig if isinstance(error, DBAPIError) else error
    if not isinstance(original, pg_errors.Error):
        return None
    diag = original.diag
    constraint = diag.constraint_name or ""
    if isinstance(original, pg_errors.CheckViolation | pg_errors.ExclusionViolation):
        field, rule = CONSTRAINT_RULES.get(constraint, ("value", diag.message_primary or ""))
        return ValidationError({field: f"{rule} (constraint {constraint})"})
    if isinstance(original, pg_errors.UniqueViolation):
        columns, values = _describe_key(diag.message_detail)
        return ConflictError(
            f"{diag.table_name}: a row with {columns} = {values} already exists (constraint {constraint})"
        )
    if isinstance(original, pg_errors.ForeignKeyViolation):
        columns, values = _describe_key(diag.message_detail)
        if "still referenced" in (diag.message_detail or ""):
            return ConflictError(
                f"{diag.table_name}: {columns} = {values} is still referenced by other rows "
                f"(constraint {constraint})"
            )
        return NotFoundError(f"{columns}: no row with {values} exists (constraint {constraint})")
    if isinstance(original, pg_errors.NotNullViolation):
        return ValidationError({diag.column_name or "value": "is required"})
    return None
