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
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette_admin import DropDown
from starlette_admin.contrib.sqla import Admin

from afilo_db.studio.auth import StudioAuth
from afilo_db.studio.dashboard import DashboardView
from afilo_db.studio.health import HealthView
from afilo_db.studio.knowledge import KnowledgeSearch
from afilo_db.studio.view_as import ViewAsUser
from afilo_db.studio.views import StudioModelView, model_views

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


def create_studio(
    engine: Engine, options: StudioOptions, app_engine: Engine | None = None
) -> Starlette:
    """The studio on `engine` (the owner's: it sees every row). `app_engine` connects as the
    application role, for "view as a user"; without it that page says how to get one."""
    # A new key per start: cookies (session, CSRF, flash) of a previous run are worthless.
    cookie_secret = secrets.token_urlsafe(32)
    admin = Admin(
        engine,
        title="afilo-db studio",
        base_url=BASE_PATH,
        templates_dir=str(TEMPLATES),
        index_view=DashboardView(engine),
        auth_provider=StudioAuth(options.secret),
        secret_key=cookie_secret,
    )
    views = model_views(read_only=options.read_only)
    for domain, domain_views in _by_domain(views).items():
        admin.add_view(DropDown(domain, views=list(domain_views), icon="fa fa-database"))
    admin.add_view(ViewAsUser(app_engine))
    admin.add_view(KnowledgeSearch())
    admin.add_view(HealthView(engine, app_engine))
    admin.templates.env.globals["studio_read_only"] = options.read_only
    admin.templates.env.globals["view_keys"] = {view.key for view in views}

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{BASE_PATH}/")

    app = Starlette(
        routes=[Route("/", home), Route("/favicon.ico", no_icon)],
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


def _by_domain(views: list[StudioModelView]) -> dict[str, list[StudioModelView]]:
    """Menu sections by the models' modules (catalog, accounts, chat, analytics)."""
    sections: dict[str, list[StudioModelView]] = {}
    for view in sorted(views, key=lambda view: view.table.name):
        domain = view.model.__module__.rsplit(".", 1)[-1].capitalize()
        sections.setdefault(domain, []).append(view)
    return dict(sorted(sections.items(), key=lambda item: _DOMAIN_ORDER.index(item[0])))


_DOMAIN_ORDER = ["Catalog", "Accounts", "Chat", "Analytics"]
