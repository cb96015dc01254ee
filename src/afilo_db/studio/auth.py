"""Logging in to the studio: one shared secret (AFILO_STUDIO_PASSWORD, or a token made at start)
and a login name that the activity log records as `studio:<login>`."""

from __future__ import annotations

import hmac
import re

from starlette.requests import Request
from starlette.responses import Response
from starlette_admin.auth import AdminUser, AuthProvider, LoginFailed
from starlette_admin.exceptions import FormValidationError

SESSION_KEY = "studio_login"
LOGIN_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def login_of(request: Request) -> str | None:
    login = request.session.get(SESSION_KEY)
    return login if isinstance(login, str) else None


def actor_of(request: Request) -> str:
    """Who the activity log names for a change made in this request."""
    return f"studio:{login_of(request) or 'unknown'}"


class StudioAuth(AuthProvider):
    """The secret is compared in constant time; the session lives in a cookie signed with a key
    made at start, so a restart logs everybody out."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret.encode()

    async def login(
        self, username: str, password: str, remember_me: bool, request: Request
    ) -> Response | None:
        if not LOGIN_PATTERN.fullmatch(username):
            raise FormValidationError(
                {"username": "your name for the activity log: 1 to 64 letters, digits, . _ @ -"}
            )
        if not hmac.compare_digest(password.encode(), self._secret):
            raise LoginFailed("Wrong password or token")
        request.session.clear()
        request.session[SESSION_KEY] = username
        return None

    async def logout(self, request: Request) -> Response | None:
        request.session.clear()
        return None

    async def authenticate(self, request: Request) -> AdminUser | None:
        login = login_of(request)
        return None if login is None else AdminUser(username=login)
