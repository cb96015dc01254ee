"""The studio's Health page: the verdicts of `afilo-db inspect check`, read-only, on the
studio's own database (the replica's lag too, when one is configured)."""

from __future__ import annotations

import anyio.to_thread
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette_admin.routing import route
from starlette_admin.views import CustomView

from afilo_db.config import get_settings
from afilo_db.db.replica import replica_url_for
from afilo_db.db.urls import libpq_url
from afilo_db.inspect.promises import promise_checks
from afilo_db.inspect.queries import inspecting
from afilo_db.inspect.verdicts import Finding, Thresholds, any_bad, run_checks

HEALTH_PATH = "/health"


class HealthView(CustomView):
    def __init__(self, engine: Engine, app_engine: Engine | None = None) -> None:
        super().__init__(
            menu_label="Health", icon="fa fa-heart-pulse", path=HEALTH_PATH, route_name="health"
        )
        self._primary_url = libpq_url(engine.url.render_as_string(hide_password=False))
        # The application's login, whose attributes the roles check judges.
        self._application_login = app_engine.url.username if app_engine is not None else None

    @route("")
    async def index(self, request: Request) -> Response:
        assert self._admin is not None, "the view is mounted by the studio"
        findings = await anyio.to_thread.run_sync(self._findings)
        return self._admin._template_response(
            request=request,
            name="studio/health.html",
            context={"title": "Health", "findings": findings, "healthy": not any_bad(findings)},
        )

    def _findings(self) -> list[Finding]:
        settings = get_settings()
        with inspecting(
            self._primary_url, settings.afilo_inspect_statement_timeout_ms
        ) as inspector:
            return run_checks(
                inspector,
                Thresholds.from_settings(settings),
                replica_url=replica_url_for(self._primary_url, settings),
                extra=promise_checks(self._application_login),
            )
