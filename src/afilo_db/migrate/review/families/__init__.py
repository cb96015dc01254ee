"""The review's comparators, one module per statement family; importing the package registers
every one of them (see `registry`)."""

from afilo_db.migrate.review.families import (
    alter_table,
    dml,
    drops,
    maintenance,
    security,
    tables,
    types,
)
from afilo_db.migrate.review.families.registry import COMPARATORS

FAMILIES = {
    module.__name__.rsplit(".", 1)[-1]: module
    for module in (alter_table, dml, drops, maintenance, security, tables, types)
}

__all__ = ["COMPARATORS", "FAMILIES"]
