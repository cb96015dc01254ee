"""Policies look the user up themselves, not through `current_user_profile_id()`.

Every application policy that limits rows to the user's own compared the row's user with
`(SELECT current_user_profile_id())`. PostgreSQL does not inline a SQL function whose body reads
a table, so each statement set the function call up anew: about 20 us a statement, on reads
(a cart, a user's downloads) that take 100 to 250 us in all. The policies now hold the same
lookup as a sub-select of their own, `(SELECT id FROM public.user_profiles WHERE clerk_user_id
= (SELECT current_clerk_user_id()))`: an index probe, evaluated once per statement, planned with
the statement. The function stays (other code calls it); the rows each policy reaches are the
same.

Revision ID: 0010_inline_user_lookup
Revises: 0009_catalog_policies
"""

from __future__ import annotations

from alembic import op

revision = "0010_inline_user_lookup"
down_revision = "0009_catalog_policies"
branch_labels = None
depends_on = None

USER_BY_FUNCTION = "(SELECT current_user_profile_id())"
USER_BY_LOOKUP = (
    "(SELECT id FROM public.user_profiles WHERE clerk_user_id = (SELECT current_clerk_user_id()))"
)

# (policy, table, USING, WITH CHECK) as they were, each naming the user by USER_BY_FUNCTION.
POLICIES: list[tuple[str, str, str | None, str | None]] = [
    (
        "cart_items_app_select",
        "cart_items",
        "user_id = (SELECT current_user_profile_id())",
        None,
    ),
    (
        "cart_items_app_insert",
        "cart_items",
        None,
        "user_id = (SELECT current_user_profile_id())",
    ),
    (
        "cart_items_app_delete",
        "cart_items",
        "user_id = (SELECT current_user_profile_id())",
        None,
    ),
    (
        "cart_items_app_update",
        "cart_items",
        "user_id = (SELECT current_user_profile_id())",
        "user_id = (SELECT current_user_profile_id())",
    ),
    (
        "downloads_app_select",
        "downloads",
        "user_id = (SELECT current_user_profile_id())",
        None,
    ),
    (
        "downloads_app_insert",
        "downloads",
        None,
        "user_id = (SELECT current_user_profile_id()) AND EXISTS (\n  SELECT FROM download_entitlements(downloads.user_id, downloads.product_id) e\n  WHERE e.subscription_id IS NOT DISTINCT FROM downloads.subscription_id\n    AND e.purchase_id IS NOT DISTINCT FROM downloads.purchase_id)",
    ),
    (
        "chat_conversations_app_select",
        "chat_conversations",
        "user_id = (SELECT current_user_profile_id())",
        None,
    ),
    (
        "chat_conversations_app_insert",
        "chat_conversations",
        None,
        "user_id = (SELECT current_user_profile_id())",
    ),
    (
        "chat_conversations_app_delete",
        "chat_conversations",
        "user_id = (SELECT current_user_profile_id())",
        None,
    ),
    (
        "chat_conversations_app_update",
        "chat_conversations",
        "user_id = (SELECT current_user_profile_id())",
        "user_id = (SELECT current_user_profile_id())",
    ),
    (
        "chat_messages_app_select",
        "chat_messages",
        "EXISTS (SELECT FROM chat_conversations c WHERE c.id = chat_messages.conversation_id AND c.user_id = (SELECT current_user_profile_id()))",
        None,
    ),
    (
        "chat_messages_app_insert",
        "chat_messages",
        None,
        "EXISTS (SELECT FROM chat_conversations c WHERE c.id = chat_messages.conversation_id AND c.user_id = (SELECT current_user_profile_id())) AND role = 'user'",
    ),
    (
        "user_subscriptions_app_select",
        "user_subscriptions",
        "user_id = (SELECT current_user_profile_id())",
        None,
    ),
    (
        "purchases_app_select",
        "purchases",
        "user_id = (SELECT current_user_profile_id())",
        None,
    ),
    (
        "user_activity_log_app_select",
        "user_activity_log",
        "user_id = (SELECT current_user_profile_id())",
        None,
    ),
    (
        "user_activity_log_app_insert",
        "user_activity_log",
        None,
        "user_id = (SELECT current_user_profile_id()) AND actor = (SELECT current_clerk_user_id())",
    ),
]


def _alter(user_from: str, user_to: str) -> None:
    for name, table, using, check in POLICIES:
        clauses = [
            f"{clause} ({expression.replace(user_from, user_to)})"
            for clause, expression in (("USING", using), ("WITH CHECK", check))
            if expression is not None
        ]
        op.execute(f"ALTER POLICY {name} ON {table} {' '.join(clauses)}")


def upgrade() -> None:
    _alter(USER_BY_FUNCTION, USER_BY_LOOKUP)


def downgrade() -> None:
    _alter(USER_BY_LOOKUP, USER_BY_FUNCTION)
