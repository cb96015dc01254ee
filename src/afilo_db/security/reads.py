"""The user-scoped hot reads, a user's cart and a user's downloads, as SQL: the statements the
services send, and server-side functions that run the same statements.

Behind a pooler that keeps no prepared statement (PgBouncer before 1.21) a statement is parsed
and planned, with its policies, on every call. A PL/pgSQL function keeps the plans of its
statements for the server connection's life, and a plan is no client's state: so there the
services call these functions instead (`afilo_db.db.hot.fetch`'s `planned`), for the same rows.
The functions read as their caller (SECURITY INVOKER): the caller's rights and policies apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

from afilo_db import rules
from afilo_db.security.context import OwnRows, user_read_sql
from afilo_db.security.policies import CLERK_USER_ID_SETTING
from afilo_db.security.roles import APP_ROLE

_UNIT_PRICE, _TIER_JOIN = rules.priced("c.quantity")
CART_TEMPLATE: Final = f"""
SELECT c.variant_id, v.sku, p.title, v.title, c.quantity,
       {_UNIT_PRICE} AS unit_price,
       {_UNIT_PRICE} * c.quantity AS line_total,
       v.currency
FROM cart_items c
JOIN product_variants v ON v.id = c.variant_id
JOIN products p ON p.id = v.product_id
{_TIER_JOIN}
WHERE {{own_rows}}
ORDER BY c.created_at, c.id
"""
CART_ROWS: Final = OwnRows("cart_items", "c.user_id")
CART_COLUMNS: Final = (
    "variant_id uuid, sku text, product_title text, variant_title text, quantity integer,"
    " unit_price numeric, line_total numeric, currency text"
)

# (user_id, created_at) is indexed: the newest `limit` downloads are read from its end.
DOWNLOADS_TEMPLATE: Final = """
SELECT d.id, d.product_id, p.handle, p.title, d.created_at, d.subscription_id, d.purchase_id
FROM downloads d JOIN products p ON p.id = d.product_id
WHERE {own_rows}
ORDER BY d.created_at DESC, d.id DESC
LIMIT %(limit)s
"""
DOWNLOADS_ROWS: Final = OwnRows("downloads", "d.user_id")
DOWNLOADS_COLUMNS: Final = (
    "id uuid, product_id uuid, product_handle text, product_title text,"
    " created_at timestamp with time zone, subscription_id uuid, purchase_id uuid"
)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class ReadFunction:
    """A read as a server-side function: `query` (psycopg's %(name)s placeholders, one per
    argument) returned by `name(arguments)`. A user's read (`as_app` given) sets the user's
    context first, and as the application role runs `as_app`, which leaves the user's rows to
    the policies (see `afilo_db.security.context.user_read_sql`)."""

    name: str
    arguments: tuple[tuple[str, str], ...]
    """(placeholder, SQL type) in the call's order."""
    columns: str
    query: str
    as_app: str | None = None

    @property
    def create_sql(self) -> str:
        # Arguments are named `_<placeholder>`, and `use_column` settles any name the result
        # shares with a column, so that the query reads as it does in the services.
        signature = ", ".join(f"_{name} {sql_type}" for name, sql_type in self.arguments)
        body = f"  RETURN QUERY\n{self._body(self.query)};\n"
        declare = ""
        if self.as_app is not None:
            # Each branch is planned the first time it runs, once per server connection. The
            # user's context lasts as long as the call: RETURN QUERY has run the query to its end
            # before the caller's context is put back, so that a caller reading for another user
            # and then as itself in the same transaction never reads as that other user.
            declare = "DECLARE\n  _caller_clerk_user_id text;\n"
            body = (
                f"  _caller_clerk_user_id := current_setting('{CLERK_USER_ID_SETTING}', true);\n"
                f"  PERFORM set_config('{CLERK_USER_ID_SETTING}', _clerk_user_id, true);\n"
                f"  IF current_user = '{APP_ROLE}' THEN\n"
                f"  RETURN QUERY\n{self._body(self.as_app)};\n"
                f"  ELSE\n{body}  END IF;\n"
                f"  PERFORM set_config('{CLERK_USER_ID_SETTING}', _caller_clerk_user_id, true);\n"
            )
        return (
            f"CREATE FUNCTION {self.name}({signature}) RETURNS TABLE ({self.columns})\n"
            f"LANGUAGE plpgsql VOLATILE AS $$\n#variable_conflict use_column\n{declare}BEGIN\n"
            f"{body}END\n$$"
        )

    @staticmethod
    def _body(query: str) -> str:
        return _PLACEHOLDER.sub(r"_\1", query.strip())

    @cached_property
    def call_sql(self) -> str:
        placeholders = ", ".join(f"%({name})s" for name, _ in self.arguments)
        return f"SELECT * FROM {self.name}({placeholders})"

    def call(self, parameters: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The call of this function with the read's parameters, for `hot.fetch`'s `planned`."""
        return self.call_sql, parameters


def _as_user(
    name: str, template: str, rows: OwnRows, columns: str, *more: tuple[str, str]
) -> ReadFunction:
    sql = user_read_sql(template, rows)
    arguments = (("clerk_user_id", "text"), *more)
    return ReadFunction(name, arguments, columns, sql.in_transaction, sql.in_transaction_as_app)


_LIMIT = ("limit", "integer")
CART: Final = ReadFunction(
    "afilo_cart",
    (("user_id", "uuid"),),
    CART_COLUMNS,
    CART_ROWS.filtered_by(CART_TEMPLATE, "%(user_id)s"),
)
USER_CART: Final = _as_user("afilo_user_cart", CART_TEMPLATE, CART_ROWS, CART_COLUMNS)
DOWNLOADS: Final = ReadFunction(
    "afilo_downloads",
    (("user_id", "uuid"), _LIMIT),
    DOWNLOADS_COLUMNS,
    DOWNLOADS_ROWS.filtered_by(DOWNLOADS_TEMPLATE, "%(user_id)s"),
)
USER_DOWNLOADS: Final = _as_user(
    "afilo_user_downloads", DOWNLOADS_TEMPLATE, DOWNLOADS_ROWS, DOWNLOADS_COLUMNS, _LIMIT
)
READ_FUNCTIONS: Final = (CART, USER_CART, DOWNLOADS, USER_DOWNLOADS)
