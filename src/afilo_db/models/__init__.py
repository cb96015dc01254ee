"""SQLAlchemy 2 typed models, one module per domain. Importing this package registers them all."""

from afilo_db.models.accounts import (
    BillingSettings,
    CartItem,
    Download,
    Purchase,
    StripeInvoicePayment,
    UserActivityLog,
    UserProfile,
    UserSubscription,
    WebhookEvent,
    WebhookRefusal,
)
from afilo_db.models.analytics import (
    AnalyticsDirtyDay,
    AnalyticsFunnelDaily,
    AnalyticsPayment,
    AnalyticsRollupState,
    Event,
)
from afilo_db.models.base import Base
from afilo_db.models.catalog import (
    Product,
    ProductCollection,
    ProductCollectionProduct,
    ProductPricingTier,
    ProductVariant,
)
from afilo_db.models.chat import (
    BotAnalytics,
    ChatConversation,
    ChatMessage,
    KnowledgeBase,
    KnowledgeSyncQueue,
    KnowledgeTerm,
)

__all__ = [
    "AnalyticsDirtyDay",
    "AnalyticsFunnelDaily",
    "AnalyticsPayment",
    "AnalyticsRollupState",
    "Base",
    "BillingSettings",
    "BotAnalytics",
    "CartItem",
    "ChatConversation",
    "ChatMessage",
    "Download",
    "Event",
    "KnowledgeBase",
    "KnowledgeSyncQueue",
    "KnowledgeTerm",
    "Product",
    "ProductCollection",
    "ProductCollectionProduct",
    "ProductPricingTier",
    "ProductVariant",
    "Purchase",
    "StripeInvoicePayment",
    "UserActivityLog",
    "UserProfile",
    "UserSubscription",
    "WebhookEvent",
    "WebhookRefusal",
]
