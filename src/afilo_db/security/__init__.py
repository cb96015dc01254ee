"""Row-level security: the roles, the policies as code, and the user and service contexts."""

from afilo_db.security.context import (
    OwnRows,
    UserRead,
    as_user,
    read_as_user,
    service_context,
    user_context,
)
from afilo_db.security.roles import APP_ROLE, SERVICE_ROLE

__all__ = [
    "APP_ROLE",
    "SERVICE_ROLE",
    "OwnRows",
    "UserRead",
    "as_user",
    "read_as_user",
    "service_context",
    "user_context",
]
