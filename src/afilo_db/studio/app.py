"""The studio as an ASGI application: starlette-admin over the models, behind a login."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route
from starlette_admin.contrib.sqla import Admin

from afilo_db.studio.auth import StudioAuth
from afilo_db.studio.dashboard import DashboardView
from afilo_db.studio.views import model_views

TEMPLATES = Path(__file__).parent / "templates"
BASE_PATH = "/studio"
SESSION_COOKIE = "afilo_studio_session"
SESSION_HOURS = 12


@dataclass(frozen=True)
class StudioOptions:
    secret: str
    """The password (AFILO_STUDIO_PASSWORD) or the one-time token that logs in."""
    read_only: bool = False


def new_token() -> str:
    """A login token for one run of the studio."""
    return secrets.token_urlsafe(24)


def create_studio(engine: Engine, options: StudioOptions) -> Starlette:
    # A new key per start: cookies (session, CSRF, flash) of a previous run are worthless.
    cookie_secret = secrets.token_urlsafe(32)
    admin = Admin(
        engine,
        title="afilo-db studio",
        base_url=BASE_PATH,
        templates_dir=str(TEMPLATES),
        index_view=DashboardView(),
        auth_provider=StudioAuth(options.secret),
        secret_key=cookie_secret,
    )
    views = model_views(read_only=options.read_only)
    for view in views:
        admin.add_view(view)
    admin.templates.env.globals["studio_read_only"] = options.read_only
    admin.templates.env.globals["view_keys"] = {view.key for view in views}

    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{BASE_PATH}/")

    app = Starlette(
        routes=[Route("/", home)],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=cookie_secret,
                session_cookie=SESSION_COOKIE,
                max_age=SESSION_HOURS * 3600,
                same_site="strict",
            )
        ],
    )
    admin.mount_to(app)
    return app
