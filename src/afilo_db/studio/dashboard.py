"""The studio's home page: every report over a date range, each as a chart (the same matplotlib
charts as `afilo-db report --format svg`) with its figures, and the operator's overview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import anyio.to_thread
from markupsafe import Markup
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette_admin.routing import route
from starlette_admin.views import CustomView

from afilo_db.analytics import charts, overview
from afilo_db.analytics.reports import REPORTS, Column, DateRange, ReportTable
from afilo_db.analytics.sources import ReportRun, run_reports
from afilo_db.config import get_settings
from afilo_db.db.replica import replica_url_for
from afilo_db.db.urls import libpq_url
from afilo_db.errors import ValidationError

CHART_CACHE_SIZE = 64


@dataclass(frozen=True)
class DashboardReport:
    table: ReportTable
    chart: Markup
    description: str


class DashboardView(CustomView):
    def __init__(self, engine: Engine) -> None:
        super().__init__(
            menu_label="Dashboard", icon="fa fa-chart-column", route_name="index", path="/"
        )
        self._primary_url = libpq_url(engine.url.render_as_string(hide_password=False))

    @route("")
    async def index(self, request: Request) -> Response:
        assert self._admin is not None, "the dashboard is mounted by the studio"
        session: Session = request.state.session
        problems: dict[str, str] = {}
        try:
            date_range = _requested_range(request)
        except ValidationError as error:
            problems = error.problems
            date_range = DateRange.default()
        figures = await anyio.to_thread.run_sync(overview.overview, session)
        run = await anyio.to_thread.run_sync(self._run, date_range)
        reports = await anyio.to_thread.run_sync(_drawn, run)
        return self._admin._template_response(
            request=request,
            name="studio/dashboard.html",
            context={
                "title": "Dashboard",
                "overview": figures,
                "answer": run.answer,
                "reports": reports,
                "date_range": date_range,
                "problems": problems,
                "cell": _cell,
            },
        )

    def _run(self, date_range: DateRange) -> ReportRun:
        settings = get_settings()
        return run_reports(
            list(REPORTS),
            date_range,
            primary_url=self._primary_url,
            replica_url=replica_url_for(self._primary_url, settings),
            max_lag_seconds=settings.replica_max_lag_seconds,
        )


def _requested_range(request: Request) -> DateRange:
    default = DateRange.default()
    days: dict[str, date] = {}
    for field, fallback in (("from", default.start), ("to", default.end)):
        value = request.query_params.get(field, "").strip()
        try:
            days[field] = date.fromisoformat(value) if value else fallback
        except ValueError:
            raise ValidationError({field: "must be a date, like 2026-01-31"}) from None
    return DateRange(days["from"], days["to"])


def _drawn(run: ReportRun) -> list[DashboardReport]:
    return [
        DashboardReport(
            table,
            _chart(table.name, table.title, table.columns, tuple(table.rows)),
            REPORTS[table.name].description,
        )
        for table in run.tables
    ]


@lru_cache(maxsize=CHART_CACHE_SIZE)
def _chart(name: str, title: str, columns: tuple[Column, ...], rows: tuple[Any, ...]) -> Markup:
    """The same figures draw the same chart: drawn once, served from memory after."""
    table = ReportTable(name, title, columns, list(rows), None)
    # matplotlib escapes every text it writes into the SVG.
    return Markup(charts.inline_svg(table))  # noqa: S704


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "rate":
        return f"{float(value):.1%}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "count":
        return f"{value:,}"
    return str(value)
