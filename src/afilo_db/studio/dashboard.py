"""The studio's home page: the marketplace at a glance, as charts drawn on the server."""

from __future__ import annotations

from decimal import Decimal

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette_admin.routing import route
from starlette_admin.views import CustomView

from afilo_db import rules
from afilo_db.studio import charts, reports


class DashboardView(CustomView):
    def __init__(self) -> None:
        super().__init__(
            menu_label="Dashboard", icon="fa fa-chart-column", route_name="index", path="/"
        )

    @route("")
    async def index(self, request: Request) -> Response:
        assert self._admin is not None, "the dashboard is mounted by the studio"
        session: Session = request.state.session
        overview = await anyio.to_thread.run_sync(reports.overview, session)
        return self._admin._template_response(
            request=request,
            name="studio/dashboard.html",
            context={"title": "Dashboard", "overview": overview, "charts": _charts(overview)},
        )


def _charts(overview: reports.Overview) -> dict[str, object]:
    tiers = [tier for tier in rules.SUBSCRIPTION_TIERS if tier != "free"]
    statuses = [
        status
        for status in rules.SUBSCRIPTION_STATUSES
        if any(key[1] == status for key in overview.subscriptions)
    ]
    revenue = overview.revenue_by_month
    return {
        "counts": charts.horizontal_bars(
            "Rows per table", sorted(overview.counts.items(), key=lambda item: -item[1])
        ),
        "subscriptions": charts.stacked_columns(
            "Subscriptions by tier and status",
            tiers,
            [
                charts.Series(
                    status, [overview.subscriptions.get((tier, status), 0) for tier in tiers]
                )
                for status in statuses
            ],
        ),
        "revenue": charts.stacked_columns(
            "Revenue by month",
            [month.month for month in revenue],
            [
                charts.Series("one-off purchases", [month.purchases for month in revenue]),
                charts.Series("subscriptions", [month.subscriptions for month in revenue]),
            ],
        ),
        "downloads": charts.horizontal_bars(
            "Downloads per product (top 10)", overview.downloads_by_product
        ),
        "revenue_total": sum(
            (month.purchases + month.subscriptions for month in revenue), Decimal(0)
        ),
    }
