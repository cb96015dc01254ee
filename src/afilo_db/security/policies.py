"""Row-level security as code: who may do what to which rows of every table.

Two roles are named here (see `afilo_db.security.roles`): `afilo_app`, what the application
connects as, acting for the user set by `as_user()`; and `afilo_service`, the service context.
Every table has row level security enabled and forced, so a role with no policy for a command
sees no rows and writes none; without `as_user()` the functions below return NULL and the user
policies match nothing (fail closed).

The migration `0002_row_level_security` and `afilo-db db roles` both build their SQL from
`TABLES`; a change here needs a new revision that applies it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from afilo_db import rules
from afilo_db.models import Base
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE

Command = Literal["SELECT", "INSERT", "UPDATE", "DELETE"]
ALL_COMMANDS: Final[tuple[Command, ...]] = ("SELECT", "INSERT", "UPDATE", "DELETE")

# The transaction-local setting `as_user()` writes.
CLERK_USER_ID_SETTING: Final = "afilo.clerk_user_id"

# Small STABLE functions, bound at creation (SQL-standard bodies), so a caller's search_path
# cannot swap the table they read. Policies call them wrapped in a sub-select:
# `(SELECT current_clerk_user_id())` is an InitPlan, evaluated once per statement.
USER_CONTEXT_FUNCTIONS: Final = (
    f"""
CREATE FUNCTION current_clerk_user_id() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN nullif(current_setting('{CLERK_USER_ID_SETTING}', true), '')
""",
    """
CREATE FUNCTION current_user_profile_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
  SELECT id FROM public.user_profiles WHERE clerk_user_id = public.current_clerk_user_id();
END
""",
)

# The user's profile id, as policies look it up: the lookup itself, an index probe evaluated once
# per statement (an InitPlan). Not `(SELECT current_user_profile_id())`, the same lookup in a
# function: a function's body is not inlined where it reads a table, so each statement would set
# up a SQL function call anew, a sizeable part of a short read (bench/rls.py; revision
# 0010_inline_user_lookup).
CURRENT_USER: Final = (
    "(SELECT id FROM public.user_profiles WHERE clerk_user_id = (SELECT current_clerk_user_id()))"
)
OWN_ROWS: Final = f"user_id = {CURRENT_USER}"
_TIERS_LOWEST_FIRST = "ARRAY[" + ", ".join(f"'{tier}'" for tier in rules.SUBSCRIPTION_TIERS) + "]"

_GRACE = rules.sql_literal(rules.GRACE_SUBSCRIPTION_STATUS)

PUBLISHED: Final = f"status = {rules.sql_literal(rules.PUBLISHED_PRODUCT_STATUS)}"

# The one entitlement rule: why this user may download this product now (no row: they may not).
# The downloads policy, the entitlement service and `afilo-db user show` all ask this function.
# It reads as its caller (SECURITY INVOKER), so the application role, acting for a user, sees
# only that user's subscriptions and purchases and only published products.
ENTITLEMENT_FUNCTION: Final = f"""
CREATE FUNCTION download_entitlements(user_id uuid, product_id uuid) RETURNS TABLE (reason text, subscription_id uuid, purchase_id uuid, valid_until timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
  SELECT format('%s subscription %s, tier %s', s.status, s.stripe_subscription_id, s.tier),
         s.id, NULL::uuid,
         s.current_period_end + CASE WHEN s.status = {_GRACE} THEN b.past_due_grace
                                     ELSE interval '0' END
  FROM public.products p
  JOIN public.user_subscriptions s ON s.user_id = download_entitlements.user_id AND s.is_current
  -- No settings row (an owner deleted it) means no grace, not no entitlements.
  CROSS JOIN (SELECT coalesce((SELECT past_due_grace FROM public.billing_settings),
                              interval '0') AS past_due_grace) b
  WHERE p.id = download_entitlements.product_id AND p.{PUBLISHED}
    AND array_position({_TIERS_LOWEST_FIRST}, s.tier)
        >= array_position({_TIERS_LOWEST_FIRST}, p.included_in_tier)
    AND (s.{rules.sql_in("status", rules.ENTITLING_SUBSCRIPTION_STATUSES)}
           AND s.current_period_end > now()
         OR s.status = {_GRACE} AND s.current_period_end + b.past_due_grace > now())
  UNION ALL
  SELECT format('paid purchase %s', coalesce(pu.stripe_payment_intent_id, pu.id::text)),
         NULL::uuid, pu.id, NULL::timestamptz
  FROM public.products p
  JOIN public.purchases pu ON pu.product_id = p.id AND pu.user_id = download_entitlements.user_id
  WHERE p.id = download_entitlements.product_id AND p.{PUBLISHED} AND pu.status = 'paid';
END
"""

FUNCTIONS: Final = (*USER_CONTEXT_FUNCTIONS, ENTITLEMENT_FUNCTION)
FUNCTION_SIGNATURES: Final = (
    "download_entitlements(uuid, uuid)",
    "current_user_profile_id()",
    "current_clerk_user_id()",
)

# A download is recorded only under an entitlement of the user's own, and names it.
ENTITLED_DOWNLOAD: Final = f"""{OWN_ROWS} AND EXISTS (
  SELECT FROM download_entitlements(downloads.user_id, downloads.product_id) e
  WHERE e.subscription_id IS NOT DISTINCT FROM downloads.subscription_id
    AND e.purchase_id IS NOT DISTINCT FROM downloads.purchase_id)"""

OWN_CONVERSATION: Final = (
    "EXISTS (SELECT FROM chat_conversations c"
    f" WHERE c.id = chat_messages.conversation_id AND c.user_id = {CURRENT_USER})"
)


@dataclass(frozen=True)
class AppRule:
    """What `afilo_app` may do with one command: rows it reaches (USING) and may write (CHECK)."""

    command: Command
    using: str | None = None
    check: str | None = None
    # An UPDATE limited to these columns (a column-level grant); empty: every column.
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSecurity:
    table: str
    app: tuple[AppRule, ...] = ()
    # The service context reaches every row with these commands.
    service: tuple[Command, ...] = ALL_COMMANDS
    # Columns the policies filter on: each must lead an index (tests check it).
    filtered_columns: tuple[str, ...] = ()
    # Rows that belong to one user: the isolation tests cover these tables.
    private: bool = True
    # The service context may blank the personal columns (erasing a user, as Clerk's
    # user.deleted asks) and nothing else: a column grant and a check that they end erased.
    service_redacts: bool = False

    @property
    def app_commands(self) -> tuple[Command, ...]:
        return tuple(rule.command for rule in self.app)


def _own(*commands: Command) -> tuple[AppRule, ...]:
    reads = {"SELECT", "UPDATE", "DELETE"}
    writes = {"INSERT", "UPDATE"}
    return tuple(
        AppRule(
            command,
            using=OWN_ROWS if command in reads else None,
            check=OWN_ROWS if command in writes else None,
        )
        for command in commands
    )


# OFFSET 0 keeps each of these EXISTS a probe of one row by its key. Without it the planner may
# turn it into a hash of every published product, built on every call, whenever it expects the
# query to check many rows: a collection page (48 rows, after a LIMIT the choice does not see)
# was then hundreds of times slower as the application than as the owner (bench/hot_paths.py,
# the collection page).
def _published_product(column: str) -> str:
    return f"EXISTS (SELECT FROM products p WHERE p.id = {column} AND p.{PUBLISHED} OFFSET 0)"


def _readable_by_all(table: str, using: str = "true", *columns: str) -> TableSecurity:
    return TableSecurity(
        table, app=(AppRule("SELECT", using=using),), filtered_columns=columns, private=False
    )


TABLES: Final[tuple[TableSecurity, ...]] = (
    TableSecurity(
        "user_profiles",
        app=(
            AppRule("SELECT", using="clerk_user_id = (SELECT current_clerk_user_id())"),
            # Not subscription_tier, clerk_user_id nor stripe_customer_id: billing and sign-up
            # (service context) own those; nor email, which Clerk owns (its user.updated event
            # writes it): an application that could set it would learn from the unique index
            # which addresses belong to other users.
            AppRule(
                "UPDATE",
                using="clerk_user_id = (SELECT current_clerk_user_id())",
                check="clerk_user_id = (SELECT current_clerk_user_id())",
                columns=("display_name", "updated_at"),
            ),
        ),
        filtered_columns=("clerk_user_id",),
    ),
    TableSecurity(
        "cart_items",
        app=(
            *_own("SELECT", "INSERT", "DELETE"),
            AppRule(
                "UPDATE",
                using=OWN_ROWS,
                check=OWN_ROWS,
                columns=("variant_id", "quantity", "updated_at"),
            ),
        ),
        filtered_columns=("user_id",),
    ),
    TableSecurity(
        "downloads",
        app=(*_own("SELECT"), AppRule("INSERT", check=ENTITLED_DOWNLOAD)),
        service=("SELECT", "INSERT"),
        service_redacts=True,
        filtered_columns=("user_id", "product_id", "subscription_id", "purchase_id"),
    ),
    TableSecurity(
        "chat_conversations",
        app=(
            *_own("SELECT", "INSERT", "DELETE"),
            AppRule(
                "UPDATE", using=OWN_ROWS, check=OWN_ROWS, columns=("title", "status", "updated_at")
            ),
        ),
        filtered_columns=("user_id",),
    ),
    TableSecurity(
        "chat_messages",
        app=(
            AppRule("SELECT", using=OWN_CONVERSATION),
            # The assistant's and system's messages are written by the service context.
            AppRule("INSERT", check=f"{OWN_CONVERSATION} AND role = 'user'"),
        ),
        filtered_columns=("conversation_id",),
    ),
    TableSecurity(
        "user_subscriptions",
        app=_own("SELECT"),
        service=("SELECT", "INSERT", "UPDATE"),
        filtered_columns=("user_id",),
    ),
    TableSecurity(
        "purchases",
        app=_own("SELECT"),
        service=("SELECT", "INSERT", "UPDATE"),
        filtered_columns=("user_id",),
    ),
    # Append-only for both roles: no UPDATE or DELETE grant or policy. Only the owner (operator
    # commands, e.g. erasing a user) can redact it.
    # The actor is the user the database knows, not what the request says.
    TableSecurity(
        "user_activity_log",
        app=(
            *_own("SELECT"),
            AppRule("INSERT", check=f"{OWN_ROWS} AND actor = (SELECT current_clerk_user_id())"),
        ),
        service=("SELECT", "INSERT"),
        service_redacts=True,
        filtered_columns=("user_id",),
    ),
    # Written and read by back-end jobs only.
    TableSecurity("bot_analytics"),
    TableSecurity("events", service=("SELECT", "INSERT"), service_redacts=True),
    # Provider events (webhooks): the application never sees them.
    TableSecurity("webhook_events", service=("SELECT", "INSERT", "UPDATE")),
    TableSecurity("webhook_refusals", service=("SELECT", "INSERT", "UPDATE"), private=False),
    # Read by the entitlement rule as whoever calls it; changed by the owner.
    TableSecurity(
        "billing_settings",
        app=(AppRule("SELECT", using="true"),),
        service=("SELECT",),
        private=False,
    ),
    # The reports' rollups: refreshed by the owner (operator commands, the studio), readable by
    # back-end jobs. The days awaiting a refresh are the events trigger's bookkeeping alone.
    TableSecurity("analytics_dirty_days", service=(), private=False),
    *(
        TableSecurity(table, service=("SELECT",), private=False)
        for table in (
            "analytics_rollup_state",
            "analytics_funnel_daily",
            # Written by the trigger on webhook_events (revision 0016), as its owner.
            "analytics_payments",
            # Written by the trigger on webhook_events (revision 0022), as its owner; read by
            # the Stripe handlers.
            "stripe_invoice_payments",
        )
    ),
    # Unpublished products (and what hangs off them) exist only for the service context.
    _readable_by_all("products", PUBLISHED, "status"),
    # A variant carries its product's status, kept true by a composite foreign key (revision
    # 0011): a column read, where a probe of products for each variant cost every cart read
    # (bench/hot_paths.py, the user reads).
    _readable_by_all("product_variants", f"product_{PUBLISHED}", "product_id"),
    # A tier is seen with its variant. The variants' own policy applies inside this one (the
    # same role reads them), so a variant of an unpublished product hides its tiers too; naming
    # products again here would add a table to every plan that reads tiers.
    _readable_by_all(
        "product_pricing_tiers",
        "EXISTS (SELECT FROM product_variants v"
        " WHERE v.id = product_pricing_tiers.variant_id OFFSET 0)",
        "variant_id",
    ),
    _readable_by_all("product_collections"),
    _readable_by_all(
        "product_collection_products",
        _published_product("product_collection_products.product_id"),
        "product_id",
    ),
    _readable_by_all(
        "knowledge_base",
        "is_published AND (knowledge_base.product_id IS NULL"
        f" OR {_published_product('knowledge_base.product_id')})",
        "is_published",
    ),
    # Filled by triggers (SECURITY DEFINER), drained by `kb sync`: back-end work only.
    TableSecurity("knowledge_sync_queue", private=False),
    # Kept by a trigger on knowledge_base (SECURITY DEFINER), counting published passages only:
    # read by knowledge search, written by nobody else.
    TableSecurity(
        "knowledge_terms",
        app=(AppRule("SELECT", using="true"),),
        service=("SELECT",),
        private=False,
    ),
)

PRIVATE_TABLES: Final = tuple(table.table for table in TABLES if table.private)


@dataclass(frozen=True)
class Policy:
    table: str
    role: str
    command: Command
    using: str | None
    check: str | None
    name: str = field(init=False)

    def __post_init__(self) -> None:
        kind = "app" if self.role == APP_ROLE else "service"
        object.__setattr__(self, "name", f"{self.table}_{kind}_{self.command.lower()}")

    def definition(self) -> str:
        """Everything after `CREATE POLICY name ON table` (alembic-utils' PGPolicy takes this)."""
        clauses = [f"AS PERMISSIVE FOR {self.command} TO {self.role}"]
        if self.using is not None:
            clauses.append(f"USING ({self.using})")
        if self.check is not None:
            clauses.append(f"WITH CHECK ({self.check})")
        return "\n".join(clauses)

    def create_sql(self) -> str:
        return f"CREATE POLICY {self.name} ON {self.table} {self.definition()}"


def personal_columns(table: str) -> dict[str, str]:
    """The personal columns of a table (declared with `personal()` on its model), each with the
    SQL of its erased value."""
    return {
        column.name: column.info.get("erased") or "NULL"
        for column in Base.metadata.tables[table].columns
        if column.info.get("personal")
    }


def redacted(table: str) -> str:
    """True of a row whose personal columns all hold their erased values."""
    return " AND ".join(
        f"{name} IS NOT DISTINCT FROM {erased}" for name, erased in personal_columns(table).items()
    )


def policies() -> Iterator[Policy]:
    for table in TABLES:
        for rule in table.app:
            yield Policy(table.table, APP_ROLE, rule.command, rule.using, rule.check)
        for command in table.service:
            everything = "true"
            using = everything if command != "INSERT" else None
            check = everything if command in ("INSERT", "UPDATE") else None
            yield Policy(table.table, SERVICE_ROLE, command, using, check)
        if table.service_redacts:
            yield Policy(table.table, SERVICE_ROLE, "UPDATE", "true", redacted(table.table))


def _grants(table: TableSecurity) -> Iterator[str]:
    for rule in table.app:
        columns = f" ({', '.join(rule.columns)})" if rule.columns else ""
        yield f"GRANT {rule.command}{columns} ON {table.table} TO {APP_ROLE}"
    if table.service:
        yield f"GRANT {', '.join(table.service)} ON {table.table} TO {SERVICE_ROLE}"
    if table.service_redacts:
        columns = ", ".join(personal_columns(table.table))
        yield f"GRANT UPDATE ({columns}) ON {table.table} TO {SERVICE_ROLE}"


def upgrade_statements() -> Iterator[str]:
    """Functions, grants, RLS and policies (the roles must exist: see `roles.VERIFY_ROLES_SQL`)."""
    yield from FUNCTIONS
    yield f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}, {SERVICE_ROLE}"
    for table in TABLES:
        yield f"ALTER TABLE {table.table} ENABLE ROW LEVEL SECURITY"
        yield f"ALTER TABLE {table.table} FORCE ROW LEVEL SECURITY"
        yield from _grants(table)
    for policy in policies():
        yield policy.create_sql()


def downgrade_statements() -> Iterator[str]:
    """Undo `upgrade_statements` in this database. The roles stay: other databases of the
    cluster may use them."""
    for policy in policies():
        yield f"DROP POLICY {policy.name} ON {policy.table}"
    for table in TABLES:
        yield f"REVOKE ALL ON {table.table} FROM {APP_ROLE}, {SERVICE_ROLE}"
        yield f"ALTER TABLE {table.table} NO FORCE ROW LEVEL SECURITY"
        yield f"ALTER TABLE {table.table} DISABLE ROW LEVEL SECURITY"
    yield f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}, {SERVICE_ROLE}"
    for signature in FUNCTION_SIGNATURES:
        yield f"DROP FUNCTION {signature}"
