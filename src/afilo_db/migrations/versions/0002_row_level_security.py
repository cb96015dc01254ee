"""Row-level security: the application and service roles, grants, policies on every table.

The roles are created when the connected role may create roles (the embedded server's superuser,
Neon's project owner); otherwise they must exist already (`afilo-db db roles` prints the SQL).
The policies come from `afilo_db.security.policies`.

Revision ID: 0002_row_level_security
Revises: 0001_baseline
Create Date: 2026-11-26 09:00:00.000000

"""

from collections.abc import Sequence

from alembic import op

from afilo_db.security import policies, roles

revision: str = "0002_row_level_security"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(roles.CREATE_ROLES_SQL)
    op.execute(roles.VERIFY_ROLES_SQL)
    op.create_index("ix_knowledge_base_is_published", "knowledge_base", ["is_published"])
    for statement in policies.upgrade_statements():
        op.execute(statement)


def downgrade() -> None:
    for statement in policies.downgrade_statements():
        op.execute(statement)
    op.drop_index("ix_knowledge_base_is_published", table_name="knowledge_base")
