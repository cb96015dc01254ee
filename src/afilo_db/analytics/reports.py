"""The reports the business reads, each one SQL statement over the daily rollups (`rollups`) or
the commerce tables, over a range of days (UTC, both ends included).

Monthly figures are the sums of the range's days in each month; the subscriber reports (churn,
retention) count whole months, as a subscriber is in or out at a month's boundary.

| report | reads |
| --- | --- |
| revenue | purchases (one-off, by `created_at`), `analytics_revenue_daily` (paid invoices, refunds) |
| mrr | `analytics_subscriptions_daily` |
| churn, retention | `analytics_subscribers` |
| subscriptions | `analytics_subscriptions_daily` |
| funnel | `analytics_funnel_daily` |
| downloads | downloads, products |
| bot | bot_analytics |
| subscription-status | user_subscriptions (their state today; the range does not apply) |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import psycopg

from afilo_db import rules
from afilo_db.analytics.partitions import add_months, month_start
from afilo_db.errors import ValidationError

ColumnKind = Literal["text", "count", "money", "rate", "number"]
TOP_PRODUCTS = 20
MAX_RANGE_DAYS = 366 * 20
MAX_COHORT_MONTHS = 120
DEFAULT_MONTHS = 12


@dataclass(frozen=True)
class DateRange:
    """Days from `start` to `end`, both included (UTC)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValidationError({"from": f"must not be after to ({self.end.isoformat()})"})
        if (self.end - self.start).days > MAX_RANGE_DAYS:
            raise ValidationError({"from": f"the range must span at most {MAX_RANGE_DAYS} days"})

    @classmethod
    def default(cls, today: date | None = None) -> DateRange:
        """The last twelve months, this one included."""
        today = today or datetime.now(UTC).date()
        return cls(add_months(month_start(today), 1 - DEFAULT_MONTHS), today)

    def parameters(self) -> dict[str, Any]:
        end = self.end + timedelta(days=1)
        return {
            "start": self.start,
            "end": end,
            "start_at": datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC),
            "end_at": datetime(end.year, end.month, end.day, tzinfo=UTC),
            "first_month": month_start(self.start),
            "last_month": month_start(self.end),
            "tiers": list(rules.SUBSCRIPTION_TIERS),
            "statuses": list(rules.SUBSCRIPTION_STATUSES),
            "top": TOP_PRODUCTS,
            "max_cohort_months": MAX_COHORT_MONTHS,
        }


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind = "number"


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float]
    line: bool = False
    """Drawn as a line over the bars (a running total, a rate)."""


@dataclass(frozen=True)
class ChartData:
    kind: Literal["columns", "stacked", "hbars", "lines"]
    categories: list[str]
    series: list[Series]
    x_label: str = ""
    y_label: str = ""


@dataclass(frozen=True)
class ReportTable:
    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[tuple[Any, ...]]
    date_range: DateRange | None
    """None when the report ignores the range (a state as of now)."""

    def column(self, name: str) -> list[Any]:
        index = [column.name for column in self.columns].index(name)
        return [row[index] for row in self.rows]

    def records(self) -> list[dict[str, Any]]:
        names = [column.name for column in self.columns]
        return [dict(zip(names, row, strict=True)) for row in self.rows]


@dataclass(frozen=True)
class ReportDefinition:
    name: str
    title: str
    description: str
    sql: str
    columns: tuple[Column, ...]
    chart: Callable[[ReportTable], ChartData]
    uses_range: bool = True

    def run(self, connection: psycopg.Connection[Any], date_range: DateRange) -> ReportTable:
        rows = connection.execute(self.sql, date_range.parameters()).fetchall()
        return ReportTable(
            self.name,
            self.title,
            self.columns,
            [tuple(row) for row in rows],
            date_range if self.uses_range else None,
        )


def _floats(values: list[Any]) -> list[float]:
    return [float(value or 0) for value in values]


def _labels(table: ReportTable, *names: str) -> list[str]:
    """One label per row; a column whose value never changes (a single currency) is left out."""
    varying = [name for name in names if len(set(table.column(name))) > 1] or list(names[:1])
    return [" ".join(str(row[name]) for name in varying) for row in table.records()]


def _pivot(table: ReportTable, x: str, group: str, value: str, order: list[str]) -> ChartData:
    # In the rows' order (months ascending, tiers lowest first), each once.
    categories = list(dict.fromkeys(table.column(x)))
    groups = [name for name in order if name in set(table.column(group))]
    cells = {(record[x], record[group]): record[value] for record in table.records()}
    return ChartData(
        "stacked",
        [str(category) for category in categories],
        [
            Series(name, _floats([cells.get((category, name), 0) for category in categories]))
            for name in groups
        ],
    )


def _revenue_chart(table: ReportTable) -> ChartData:
    return ChartData(
        "columns",
        _labels(table, "month", "currency"),
        [
            Series("one-off", _floats(table.column("one_off"))),
            Series("recurring", _floats(table.column("recurring"))),
            Series("refunds", [-value for value in _floats(table.column("refunds"))]),
            Series("net", _floats(table.column("net")), line=True),
        ],
        y_label="revenue",
    )


def _mrr_chart(table: ReportTable) -> ChartData:
    return ChartData(
        "columns",
        _labels(table, "month", "currency"),
        [
            Series("new", _floats(table.column("new"))),
            Series("expansion", _floats(table.column("expansion"))),
            Series("contraction", [-value for value in _floats(table.column("contraction"))]),
            Series("churn", [-value for value in _floats(table.column("churn"))]),
            Series("MRR", _floats(table.column("mrr")), line=True),
        ],
        y_label="monthly recurring revenue",
    )


def _churn_chart(table: ReportTable) -> ChartData:
    return ChartData(
        "columns",
        [str(month) for month in table.column("month")],
        [
            Series("subscribed at start", _floats(table.column("subscribers_at_start"))),
            Series("new", _floats(table.column("new"))),
            Series("churned", _floats(table.column("churned"))),
        ],
        y_label="subscribers",
    )


def _retention_chart(table: ReportTable) -> ChartData:
    offsets = sorted(set(table.column("months_since_start")))
    cohorts = sorted(set(table.column("cohort")))
    cells = {(r["cohort"], r["months_since_start"]): r["retention"] for r in table.records()}
    return ChartData(
        "lines",
        [str(offset) for offset in offsets],
        [
            Series(
                str(cohort),
                [
                    float(cells[(cohort, k)]) if (cohort, k) in cells else float("nan")
                    for k in offsets
                ],
                line=True,
            )
            for cohort in cohorts
        ],
        x_label="months since the cohort's first month",
        y_label="share still subscribed",
    )


def _funnel_chart(table: ReportTable) -> ChartData:
    return ChartData(
        "columns",
        [str(month) for month in table.column("month")],
        [
            Series("viewed a product", _floats(table.column("viewed"))),
            Series("added to cart", _floats(table.column("carted"))),
            Series("purchased", _floats(table.column("purchased"))),
        ],
        y_label="visitors (sessions per day)",
    )


def _bot_chart(table: ReportTable) -> ChartData:
    return ChartData(
        "columns",
        [str(month) for month in table.column("month")],
        [
            Series("conversations", _floats(table.column("conversations"))),
            Series("resolved", _floats(table.column("resolved"))),
        ],
        y_label="conversations",
    )


def _downloads_chart(table: ReportTable) -> ChartData:
    return ChartData(
        "hbars",
        [str(title) for title in table.column("product")],
        [Series("downloads", _floats(table.column("downloads")))],
    )


REVENUE = """
WITH one_off AS (
  SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, currency,
         sum(amount) AS amount
  FROM purchases
  WHERE status IN ('paid', 'refunded') AND created_at >= %(start_at)s AND created_at < %(end_at)s
  GROUP BY 1, 2
), invoiced AS (
  SELECT date_trunc('month', day)::date AS month, currency,
         sum(recurring) AS recurring, sum(refunds) AS refunds
  FROM analytics_revenue_daily WHERE day >= %(start)s AND day < %(end)s
  GROUP BY 1, 2
)
SELECT to_char(month, 'YYYY-MM'), currency, coalesce(o.amount, 0), coalesce(i.recurring, 0),
       coalesce(i.refunds, 0), coalesce(o.amount, 0) + coalesce(i.recurring, 0) - coalesce(i.refunds, 0)
FROM one_off o FULL JOIN invoiced i USING (month, currency)
ORDER BY month, currency
"""

# Movements within the range; the running MRR over all days up to the range's end.
MRR = """
WITH monthly AS (
  SELECT date_trunc('month', day)::date AS month, currency,
         coalesce(sum(new_mrr) FILTER (WHERE day >= %(start)s), 0) AS new,
         coalesce(sum(expansion_mrr) FILTER (WHERE day >= %(start)s), 0) AS expansion,
         coalesce(sum(contraction_mrr) FILTER (WHERE day >= %(start)s), 0) AS contraction,
         coalesce(sum(churned_mrr) FILTER (WHERE day >= %(start)s), 0) AS churn,
         sum(new_mrr + expansion_mrr - contraction_mrr - churned_mrr) AS net_all
  FROM analytics_subscriptions_daily WHERE day < %(end)s
  GROUP BY 1, 2
), running AS (
  SELECT *, sum(net_all) OVER (PARTITION BY currency ORDER BY month) AS mrr FROM monthly
)
SELECT to_char(month, 'YYYY-MM'), currency, new, expansion, contraction, churn,
       new + expansion - contraction - churn, mrr
FROM running WHERE month >= %(first_month)s
ORDER BY month, currency
"""

MONTHS = """
months AS (
  SELECT month::date, (month::timestamp AT TIME ZONE 'UTC') AS month_at,
         ((month + interval '1 month')::timestamp AT TIME ZONE 'UTC') AS next_at
  FROM generate_series(%(first_month)s::date, %(last_month)s::date, interval '1 month') AS month
)"""

CHURN = f"""
WITH {MONTHS}, figures AS (
  SELECT m.month,
         count(s.user_id) FILTER (WHERE s.started_at < m.month_at
                                  AND (s.canceled_at IS NULL OR s.canceled_at >= m.month_at))
           AS at_start,
         count(s.user_id) FILTER (WHERE s.started_at >= m.month_at AND s.started_at < m.next_at)
           AS new,
         count(s.user_id) FILTER (WHERE s.canceled_at >= m.month_at AND s.canceled_at < m.next_at)
           AS churned
  FROM months m LEFT JOIN analytics_subscribers s ON s.started_at < m.next_at
  GROUP BY m.month
)
SELECT to_char(month, 'YYYY-MM'), at_start, new, churned,
       round(churned::numeric / nullif(at_start + new, 0), 4),
       at_start + new - churned
FROM figures ORDER BY month
"""

# Per cohort, how many subscribers it has and in which month (counted from the cohort's) each
# lost one left: retained at the end of month k = subscribers - those who left in months 0..k.
RETENTION = """
WITH spans AS (
  SELECT date_trunc('month', started_at AT TIME ZONE 'UTC')::date AS cohort,
         date_trunc('month', canceled_at AT TIME ZONE 'UTC')::date AS left_in
  FROM analytics_subscribers
  WHERE started_at >= (%(first_month)s::timestamp AT TIME ZONE 'UTC')
    AND started_at < %(end_at)s
), sizes AS (
  SELECT cohort, count(*) AS subscribers FROM spans GROUP BY cohort
), losses AS (
  SELECT cohort, (extract(year FROM age(left_in, cohort)) * 12
                  + extract(month FROM age(left_in, cohort)))::int AS k, count(*) AS lost
  FROM spans WHERE left_in IS NOT NULL GROUP BY 1, 2
), offsets AS (
  SELECT cohort, subscribers, k
  FROM sizes, generate_series(0, %(max_cohort_months)s) AS k
  WHERE (cohort + make_interval(months => k))::date <= %(last_month)s
), retained AS (
  SELECT o.cohort, o.k, o.subscribers,
         o.subscribers - coalesce(sum(l.lost), 0) AS retained
  FROM offsets o LEFT JOIN losses l ON l.cohort = o.cohort AND l.k <= o.k
  GROUP BY o.cohort, o.k, o.subscribers
)
SELECT to_char(cohort, 'YYYY-MM'), k, subscribers, retained,
       round(retained::numeric / subscribers, 4)
FROM retained ORDER BY cohort, k
"""

SUBSCRIPTIONS = """
SELECT to_char(date_trunc('month', day), 'YYYY-MM'), tier, sum(started)::bigint,
       sum(upgrades)::bigint, sum(downgrades)::bigint, sum(canceled)::bigint
FROM analytics_subscriptions_daily WHERE day >= %(start)s AND day < %(end)s
GROUP BY 1, tier ORDER BY 1, array_position(%(tiers)s::text[], tier)
"""

FUNNEL = """
SELECT to_char(date_trunc('month', day), 'YYYY-MM'), sum(viewed)::bigint, sum(carted)::bigint,
       sum(purchased)::bigint,
       round(sum(carted)::numeric / nullif(sum(viewed), 0), 4),
       round(sum(purchased)::numeric / nullif(sum(carted), 0), 4),
       round(sum(purchased)::numeric / nullif(sum(viewed), 0), 4)
FROM analytics_funnel_daily WHERE day >= %(start)s AND day < %(end)s
GROUP BY 1 ORDER BY 1
"""

DOWNLOADS = """
SELECT p.title, p.handle, count(*)
FROM downloads d JOIN products p ON p.id = d.product_id
WHERE d.created_at >= %(start_at)s AND d.created_at < %(end_at)s
GROUP BY p.id, p.title, p.handle ORDER BY count(*) DESC, p.title LIMIT %(top)s
"""

# Latency is an average per conversation-day, weighted here by the answers it averages.
BOT = """
SELECT to_char(date_trunc('month', day), 'YYYY-MM'),
       count(DISTINCT conversation_id),
       count(DISTINCT conversation_id) FILTER (WHERE resolved),
       round((count(DISTINCT conversation_id) FILTER (WHERE resolved))::numeric
             / count(DISTINCT conversation_id), 4),
       round(sum(avg_latency_ms::numeric * answered) FILTER (WHERE avg_latency_ms IS NOT NULL)
             / nullif(sum(answered) FILTER (WHERE avg_latency_ms IS NOT NULL), 0)),
       round(avg(satisfaction), 2),
       count(satisfaction)
FROM bot_analytics WHERE day >= %(start)s AND day < %(end)s
GROUP BY 1 ORDER BY 1
"""

SUBSCRIPTION_STATUS = """
SELECT tier, status, count(*) FROM user_subscriptions
GROUP BY tier, status
ORDER BY array_position(%(tiers)s::text[], tier), array_position(%(statuses)s::text[], status)
"""


def _status_chart(table: ReportTable) -> ChartData:
    return _pivot(table, "tier", "status", "subscriptions", list(rules.SUBSCRIPTION_STATUSES))


def _subscriptions_chart(table: ReportTable) -> ChartData:
    return _pivot(table, "month", "tier", "new", list(rules.SUBSCRIPTION_TIERS))


REPORTS: dict[str, ReportDefinition] = {
    report.name: report
    for report in (
        ReportDefinition(
            "revenue", "Revenue by month",
            "One-off purchases (paid or later refunded, in the month bought), recurring revenue "
            "(paid invoices), refunds (in the month refunded) and the net.",
            REVENUE,
            (Column("month", "text"), Column("currency", "text"), Column("one_off", "money"),
             Column("recurring", "money"), Column("refunds", "money"), Column("net", "money")),
            _revenue_chart,
        ),
        ReportDefinition(
            "mrr", "Monthly recurring revenue and its movements",
            "New, expansion (upgrades), contraction (downgrades) and churned MRR per month, "
            "their net, and the MRR at the month's end.",
            MRR,
            (Column("month", "text"), Column("currency", "text"), Column("new", "money"),
             Column("expansion", "money"), Column("contraction", "money"),
             Column("churn", "money"), Column("net_new", "money"), Column("mrr", "money")),
            _mrr_chart,
        ),
        ReportDefinition(
            "churn", "Subscriber churn by month",
            "Subscribers at the month's start, new ones, those who left, the churn rate "
            "(left / (at start + new)) and subscribers at the month's end.",
            CHURN,
            (Column("month", "text"), Column("subscribers_at_start", "count"),
             Column("new", "count"), Column("churned", "count"), Column("churn_rate", "rate"),
             Column("subscribers_at_end", "count")),
            _churn_chart,
        ),
        ReportDefinition(
            "retention", "Subscriber retention by monthly cohort",
            "Subscribers grouped by the month of their first subscription: how many were still "
            "subscribed at the end of each following month.",
            RETENTION,
            (Column("cohort", "text"), Column("months_since_start", "count"),
             Column("subscribers", "count"), Column("retained", "count"),
             Column("retention", "rate")),
            _retention_chart,
        ),
        ReportDefinition(
            "subscriptions", "New subscriptions by tier",
            "Per month and tier: new subscriptions, upgrades and downgrades into the tier, "
            "cancellations.",
            SUBSCRIPTIONS,
            (Column("month", "text"), Column("tier", "text"), Column("new", "count"),
             Column("upgraded_to", "count"), Column("downgraded_to", "count"),
             Column("canceled", "count")),
            _subscriptions_chart,
        ),
        ReportDefinition(
            "downloads", f"Downloads per product (top {TOP_PRODUCTS})",
            "The most downloaded products in the range.",
            DOWNLOADS,
            (Column("product", "text"), Column("handle", "text"), Column("downloads", "count")),
            _downloads_chart,
        ),
        ReportDefinition(
            "funnel", "Funnel: product view, cart, purchase",
            "Visitors (a session, or a user without one) who, within a day, viewed a product, "
            "then added to a cart, then bought; and the conversion between the steps.",
            FUNNEL,
            (Column("month", "text"), Column("viewed", "count"), Column("carted", "count"),
             Column("purchased", "count"), Column("view_to_cart", "rate"),
             Column("cart_to_purchase", "rate"), Column("view_to_purchase", "rate")),
            _funnel_chart,
        ),
        ReportDefinition(
            "bot", "Chat bot: resolution, latency, satisfaction",
            "Conversations per month, how many were resolved, the answer latency (weighted by "
            "answers) and the average satisfaction (1-5) of those rated.",
            BOT,
            (Column("month", "text"), Column("conversations", "count"),
             Column("resolved", "count"), Column("resolution_rate", "rate"),
             Column("avg_latency_ms", "number"), Column("satisfaction", "number"),
             Column("rated", "count")),
            _bot_chart,
        ),
        ReportDefinition(
            "subscription-status", "Subscriptions by tier and status (today)",
            "Every subscription's current tier and status; the date range does not apply.",
            SUBSCRIPTION_STATUS,
            (Column("tier", "text"), Column("status", "text"), Column("subscriptions", "count")),
            _status_chart,
            uses_range=False,
        ),
    )
}  # fmt: skip


def report_definition(name: str) -> ReportDefinition:
    try:
        return REPORTS[name]
    except KeyError:
        raise ValidationError({"report": "must be one of " + ", ".join(REPORTS)}) from None
