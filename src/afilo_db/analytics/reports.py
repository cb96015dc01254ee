"""The reports the business reads, each one SQL statement over a range of days (UTC, both ends
included), by the definitions of Stripe Billing, ChartMogul and PostHog
(docs/analytics-definitions.md says each one and where it differs).

Money comes from the billing mirror the webhook handlers write in the event's own transaction:
MRR, its movements, churn and cohorts from the subscription history (`user_subscriptions`, every
state at Stripe's time), revenue and refunds from `analytics_payments` (written by a trigger on
the stored Stripe events). So a late or corrected webhook changes every report at once, and no
application code has to remember to record anything. Behaviour (the funnel) comes from events.

MRR is taken at each month's end (or the range's end): a customer's MRR in a currency is the sum
of the amounts of their subscriptions whose state then is active or past_due (trials excluded);
the movements compare it with the month before.

| report | reads |
| --- | --- |
| revenue | analytics_payments (one-off and recurring by the time paid, refunds by their time) |
| mrr, revenue-retention, churn, retention | user_subscriptions (states at month ends) |
| subscriptions, trials | user_subscriptions (transitions between states) |
| funnel | analytics_funnel_daily (the default window), else events |
| downloads | downloads, products |
| bot | bot_analytics |
| subscription-status | user_subscriptions (the current state of each; the range does not apply) |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import psycopg

from afilo_db import rules
from afilo_db.analytics.partitions import add_months, month_start
from afilo_db.analytics.rollups import DEFAULT_CONVERSION_WINDOW, FUNNEL_STEPS, funnel_parameters
from afilo_db.errors import ValidationError

ColumnKind = Literal["text", "count", "money", "rate", "number"]
TOP_PRODUCTS = 20
MAX_RANGE_DAYS = 366 * 20
MAX_COHORT_MONTHS = 120
DEFAULT_MONTHS = 12
MIN_CONVERSION_WINDOW = timedelta(hours=1)
MAX_CONVERSION_WINDOW = timedelta(days=90)


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

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

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
            "mrr_statuses": list(rules.MRR_SUBSCRIPTION_STATUSES),
            "top": TOP_PRODUCTS,
            "max_cohort_months": MAX_COHORT_MONTHS,
        }


# Fixed planning rates, not market rates (no network fetch: a report gives the same answer
# whenever it is run): US dollars per unit of each currency. docs/analytics-definitions.md lists
# them; edit them here when the business revises them.
USD_PER_UNIT: dict[str, Decimal] = {
    "USD": Decimal("1"), "EUR": Decimal("1.08"), "GBP": Decimal("1.27"), "CHF": Decimal("1.13"),
    "CAD": Decimal("0.73"), "AUD": Decimal("0.66"), "NZD": Decimal("0.60"),
    "SGD": Decimal("0.75"), "SEK": Decimal("0.095"), "NOK": Decimal("0.092"),
    "DKK": Decimal("0.145"),
}  # fmt: skip


@dataclass(frozen=True)
class ReportOptions:
    """What a report may be asked besides its range."""

    conversion_window: timedelta = DEFAULT_CONVERSION_WINDOW
    """The funnel's: how long after the first step the later ones may come (PostHog's
    conversion window)."""
    currency: str | None = None
    """The reporting currency the money reports convert every amount to (USD_PER_UNIT); None:
    each currency on its own."""

    def __post_init__(self) -> None:
        if not MIN_CONVERSION_WINDOW <= self.conversion_window <= MAX_CONVERSION_WINDOW:
            raise ValidationError(
                {"conversion_window": f"must be from 1 hour to {MAX_CONVERSION_WINDOW.days} days"}
            )
        if self.currency is not None and self.currency not in USD_PER_UNIT:
            raise ValidationError({"currency": "must be one of " + ", ".join(USD_PER_UNIT)})

    def parameters(self) -> dict[str, Any]:
        """The rate of each currency into the reporting currency (1 when there is none)."""
        target = USD_PER_UNIT[self.currency] if self.currency else None
        return {
            "reporting_currency": self.currency,
            "rate_currencies": list(USD_PER_UNIT),
            "rates": [rate / target if target else Decimal(1) for rate in USD_PER_UNIT.values()],
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
    """One panel of a report's chart: one axis, one unit (a currency, a count, a rate)."""

    kind: Literal["columns", "stacked", "hbars", "lines"]
    categories: list[str]
    series: list[Series]
    x_label: str = ""
    y_label: str = ""
    title: str = ""
    """What sets this panel apart from the others (its currency, its unit)."""
    counts: bool = False
    """Whole numbers: the ticks are integers."""


@dataclass(frozen=True)
class ReportTable:
    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[tuple[Any, ...]]
    date_range: DateRange | None
    """None when the report ignores the range (a state as of now)."""

    @property
    def heading(self) -> str:
        """The title with the period it covers (a state report's title says "today")."""
        if self.date_range is None:
            return self.title
        return f"{self.title}, {self.date_range.start:%Y-%m-%d} to {self.date_range.end:%Y-%m-%d}"

    def index(self, name: str) -> int:
        return [column.name for column in self.columns].index(name)

    def column(self, name: str) -> list[Any]:
        index = self.index(name)
        return [row[index] for row in self.rows]

    def records(self) -> list[dict[str, Any]]:
        names = [column.name for column in self.columns]
        return [dict(zip(names, row, strict=True)) for row in self.rows]


@dataclass(frozen=True)
class ReportDefinition:
    name: str
    title: str
    description: str
    sql: str | Callable[[ReportOptions], str]
    """The statement, or what picks it from the options."""
    columns: tuple[Column, ...]
    chart: Callable[[ReportTable], list[ChartData]]
    uses_range: bool = True

    def run(
        self,
        connection: psycopg.Connection[Any],
        date_range: DateRange,
        options: ReportOptions | None = None,
    ) -> ReportTable:
        options = options or ReportOptions()
        sql = self.sql if isinstance(self.sql, str) else self.sql(options)
        parameters = (
            date_range.parameters()
            | funnel_parameters(date_range.days(), options.conversion_window)
            | options.parameters()
        )
        rows = connection.execute(sql, parameters).fetchall()
        return ReportTable(
            self.name,
            self.title,
            self.columns,
            [tuple(row) for row in rows],
            date_range if self.uses_range else None,
        )


def _floats(values: list[Any]) -> list[float]:
    return [float(value or 0) for value in values]


def _months(table: ReportTable) -> list[str]:
    return [str(month) for month in dict.fromkeys(table.column("month"))]


def _per_currency(
    table: ReportTable, series: Callable[[ReportTable], list[Series]], y_label: str
) -> list[ChartData]:
    """One panel per currency (amounts in two currencies never share an axis)."""
    panels = []
    for currency in dict.fromkeys(table.column("currency")):
        rows = [row for row in table.rows if row[table.index("currency")] == currency]
        part = ReportTable(table.name, table.title, table.columns, rows, table.date_range)
        panels.append(
            ChartData(
                "columns",
                _months(part),
                series(part),
                y_label=f"{y_label} ({currency})",
                title=str(currency),
            )
        )
    return panels


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
        counts=True,
    )


def _revenue_chart(table: ReportTable) -> list[ChartData]:
    return _per_currency(
        table,
        lambda part: [
            Series("one-off", _floats(part.column("one_off"))),
            Series("recurring", _floats(part.column("recurring"))),
            Series("refunds", [-value for value in _floats(part.column("refunds"))]),
            Series("net", _floats(part.column("net")), line=True),
        ],
        "revenue",
    )


def _mrr_chart(table: ReportTable) -> list[ChartData]:
    return _per_currency(
        table,
        lambda part: [
            Series("new", _floats(part.column("new"))),
            Series("expansion", _floats(part.column("expansion"))),
            Series("reactivation", _floats(part.column("reactivation"))),
            Series("contraction", [-value for value in _floats(part.column("contraction"))]),
            Series("churn", [-value for value in _floats(part.column("churn"))]),
            Series("MRR at the month's end", _floats(part.column("mrr")), line=True),
        ],
        "monthly recurring revenue",
    )


def _revenue_retention_chart(table: ReportTable) -> list[ChartData]:
    panels = _per_currency(
        table,
        lambda part: [
            Series("gross revenue churn", _floats(part.column("gross_revenue_churn_rate")), True),
            Series(
                "gross revenue retention", _floats(part.column("gross_revenue_retention")), True
            ),
            Series("net revenue retention", _floats(part.column("net_revenue_retention")), True),
        ],
        "share of the MRR at the month's start",
    )
    return [replace(panel, kind="lines") for panel in panels]


def _churn_chart(table: ReportTable) -> list[ChartData]:
    return [
        ChartData(
            "columns",
            _months(table),
            [
                Series("customers at start", _floats(table.column("customers_at_start"))),
                Series("new", _floats(table.column("new"))),
                Series("reactivated", _floats(table.column("reactivated"))),
                Series("churned", _floats(table.column("churned"))),
            ],
            y_label="customers",
            counts=True,
        )
    ]


def _retention_chart(table: ReportTable) -> list[ChartData]:
    offsets = sorted(set(table.column("months_since_start")))
    cohorts = sorted(set(table.column("cohort")))
    cells = {(r["cohort"], r["months_since_start"]): r["retention"] for r in table.records()}
    return [
        ChartData(
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
            y_label="share of the cohort paying",
        )
    ]


def _trials_chart(table: ReportTable) -> list[ChartData]:
    return [
        ChartData(
            "columns",
            _months(table),
            [
                Series("trials started", _floats(table.column("trials"))),
                Series("converted to paid", _floats(table.column("converted"))),
            ],
            y_label="subscriptions",
            counts=True,
        )
    ]


def _funnel_chart(table: ReportTable) -> list[ChartData]:
    return [
        ChartData(
            "columns",
            _months(table),
            [
                Series("viewed a product", _floats(table.column("viewed"))),
                Series("added to cart", _floats(table.column("carted"))),
                Series("purchased", _floats(table.column("purchased"))),
            ],
            y_label="visitors",
            counts=True,
        )
    ]


def _bot_chart(table: ReportTable) -> list[ChartData]:
    months = _months(table)
    return [
        ChartData(
            "columns",
            months,
            [
                Series("conversations", _floats(table.column("conversations"))),
                Series("resolved", _floats(table.column("resolved"))),
            ],
            y_label="conversations",
            title="resolution",
            counts=True,
        ),
        ChartData(
            "lines",
            months,
            [Series("answer latency", _floats(table.column("avg_latency_ms")), line=True)],
            y_label="milliseconds",
            title="latency (weighted by answers)",
        ),
        ChartData(
            "lines",
            months,
            [
                Series(
                    "satisfaction",
                    [
                        float("nan") if value is None else float(value)
                        for value in table.column("satisfaction")
                    ],
                    line=True,
                )
            ],
            y_label="average rating (1-5)",
            title="satisfaction of the rated conversations",
        ),
    ]


def _downloads_chart(table: ReportTable) -> list[ChartData]:
    return [
        ChartData(
            "hbars",
            [str(title) for title in table.column("product")],
            [Series("downloads", _floats(table.column("downloads")))],
            counts=True,
        )
    ]


# The months of the range, each with the moment it starts and ends.
MONTHS = """
months AS (
  SELECT month::date, (month::timestamp AT TIME ZONE 'UTC') AS month_at,
         ((month + interval '1 month')::timestamp AT TIME ZONE 'UTC') AS next_at
  FROM generate_series(%(first_month)s::date, %(last_month)s::date, interval '1 month') AS month
)"""

# Each amount in the reporting currency when one is asked (REPORTING_RATES), else as it is: the
# reports below read amounts and currencies through this. A subscription state's amount is its
# monthly amount: the price over the months it bills for (a yearly price a twelfth, as
# ChartMogul normalises).
# An amount in a currency with no rate (Stripe settles in many more than USD_PER_UNIT lists, and
# analytics_payments takes what Stripe sent) stays in its own currency rather than vanish.
CONVERTED = """
rates AS (
  SELECT * FROM unnest(%(rate_currencies)s::text[], %(rates)s::numeric[]) AS r(currency, rate)
), converted_payments AS (
  SELECT p.kind, p.occurred_at,
         CASE WHEN r.rate IS NULL THEN p.currency
              ELSE coalesce(%(reporting_currency)s, p.currency) END AS currency,
         round(p.amount * coalesce(r.rate, 1), 2) AS amount
  FROM analytics_payments p LEFT JOIN rates r USING (currency)
), converted_states AS (
  SELECT s.user_id, s.stripe_subscription_id, s.status, s.state_event_id, s.state_as_of,
         s.created_at,
         CASE WHEN r.rate IS NULL THEN s.currency
              ELSE coalesce(%(reporting_currency)s, s.currency) END AS currency,
         round(s.amount * coalesce(r.rate, 1) / s.interval_months, 2) AS amount
  FROM user_subscriptions s LEFT JOIN rates r USING (currency)
)"""

REVENUE = f"""
WITH {MONTHS}, {CONVERTED}, payments AS (
  SELECT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date AS month, currency,
         coalesce(sum(amount) FILTER (WHERE kind = 'one_off'), 0) AS one_off,
         coalesce(sum(amount) FILTER (WHERE kind = 'recurring'), 0) AS recurring,
         coalesce(sum(amount) FILTER (WHERE kind = 'refund'), 0) AS refunds
  FROM converted_payments WHERE occurred_at >= %(start_at)s AND occurred_at < %(end_at)s
  GROUP BY 1, 2
), currencies AS (
  -- From the stored rows, not converted ones: converting every payment ever made only to name
  -- the currencies is most of the statement's work.
  SELECT DISTINCT CASE WHEN r.rate IS NULL THEN p.currency
                       ELSE coalesce(%(reporting_currency)s, p.currency) END AS currency
  FROM analytics_payments p LEFT JOIN rates r USING (currency) WHERE p.occurred_at < %(end_at)s
)
SELECT to_char(month, 'YYYY-MM'), currency, coalesce(p.one_off, 0), coalesce(p.recurring, 0),
       coalesce(p.refunds, 0),
       coalesce(p.one_off, 0) + coalesce(p.recurring, 0) - coalesce(p.refunds, 0)
FROM months CROSS JOIN currencies LEFT JOIN payments p USING (month, currency)
ORDER BY month, currency
"""

# Each customer's MRR per currency at a month's end (the range's end for its last month) changes
# only in the months where one of their subscriptions changed state, so it is computed at those
# months alone and carried forward between them: the cost grows with the subscription states, not
# with customers x months. A subscription's state at a month's end is the last it entered in that
# month (in force until its next change); what it changed is that state's MRR against the one it
# replaced, in the customer and currency of each.
SUBSCRIPTION_CHANGES = f"""
{CONVERTED}, states AS (
  SELECT user_id, stripe_subscription_id AS subscription, currency, at, state_event_id,
         date_trunc('month', at AT TIME ZONE 'UTC')::date AS month,
         CASE WHEN status = ANY(%(mrr_statuses)s) THEN amount ELSE 0 END AS mrr
  FROM (SELECT *, coalesce(state_as_of, created_at) AS at FROM converted_states) s
  WHERE at < %(end_at)s
), month_ends AS (
  SELECT DISTINCT ON (subscription, month) user_id, subscription, currency, month, mrr
  FROM states ORDER BY subscription, month, at DESC, state_event_id DESC NULLS LAST
), changes AS (
  SELECT c.user_id, c.currency, m.month, c.change
  FROM (SELECT *, lag(user_id) OVER by_time AS user_before,
               lag(currency) OVER by_time AS currency_before, lag(mrr) OVER by_time AS mrr_before
        FROM month_ends WINDOW by_time AS (PARTITION BY subscription ORDER BY month)) m,
       LATERAL (VALUES (m.user_id, m.currency, m.mrr),
                       (m.user_before, m.currency_before, -m.mrr_before)) AS c(user_id, currency, change)
  WHERE c.user_id IS NOT NULL
), history AS (
  SELECT month::date
  FROM generate_series(least(%(first_month)s::date, (SELECT min(month) FROM changes)),
                       %(last_month)s::date, interval '1 month') AS month
)"""


def _movements(customer: str) -> str:
    """Each customer's MRR (per `customer`: the user, or the user and currency) at the end of
    each month it may have changed in, the MRR a month before, and whether it was ever non-zero
    before: a customer appears from their first subscription state on."""
    return f"""{SUBSCRIPTION_CHANGES}, customer_changes AS (
  SELECT {customer}, month, sum(change) AS change,
         sum(sum(change)) OVER (PARTITION BY {customer} ORDER BY month) AS mrr
  FROM changes GROUP BY {customer}, month
), movements AS (
  SELECT {customer}, month, mrr, mrr - change AS mrr_before,
         coalesce(bool_or(mrr > 0) OVER (PARTITION BY {customer} ORDER BY month
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                  false) AS paid_before
  FROM customer_changes
)"""


# ChartMogul's movements: new (a first non-zero MRR), reactivation (non-zero again after zero),
# expansion and contraction (up or down, still non-zero), churn (down to zero). The MRR and the
# customers paying are running sums of the months' movements from the history's first month, so
# a month without movement carries the month before. Every month of the range is present for
# every currency the history knows.
MRR_FIGURES = f"""
WITH {_movements("user_id, currency")}, currencies AS (
  SELECT DISTINCT currency FROM changes
), figures AS (
  SELECT month, currency,
    coalesce(sum(mrr) FILTER (WHERE mrr_before = 0 AND mrr > 0 AND NOT paid_before), 0) AS new,
    coalesce(sum(mrr - mrr_before) FILTER (WHERE mrr_before > 0 AND mrr > mrr_before), 0)
      AS expansion,
    coalesce(sum(mrr_before - mrr) FILTER (WHERE mrr > 0 AND mrr < mrr_before), 0)
      AS contraction,
    coalesce(sum(mrr_before) FILTER (WHERE mrr_before > 0 AND mrr = 0), 0) AS churn,
    coalesce(sum(mrr) FILTER (WHERE mrr_before = 0 AND mrr > 0 AND paid_before), 0)
      AS reactivation,
    sum(mrr - mrr_before) AS change,
    count(*) FILTER (WHERE mrr_before = 0 AND mrr > 0)
      - count(*) FILTER (WHERE mrr_before > 0 AND mrr = 0) AS customers_change
  FROM movements GROUP BY month, currency
), running AS (
  SELECT h.month, c.currency, coalesce(f.new, 0) AS new,
         coalesce(f.expansion, 0) AS expansion, coalesce(f.contraction, 0) AS contraction,
         coalesce(f.churn, 0) AS churn, coalesce(f.reactivation, 0) AS reactivation,
         coalesce(f.change, 0) AS change,
         sum(coalesce(f.change, 0)) OVER by_month AS mrr,
         sum(coalesce(f.customers_change, 0)) OVER by_month AS customers
  FROM history h CROSS JOIN currencies c LEFT JOIN figures f USING (month, currency)
  WINDOW by_month AS (PARTITION BY c.currency ORDER BY h.month)
), report AS (
  SELECT month, currency, mrr - change AS mrr_at_start, new, expansion, contraction, churn,
         reactivation, mrr, customers::bigint AS customers
  FROM running WHERE month >= %(first_month)s
)"""

MRR = f"""{MRR_FIGURES}
SELECT to_char(month, 'YYYY-MM'), currency, mrr_at_start, new, expansion, contraction, churn,
       reactivation, new + expansion + reactivation - contraction - churn, mrr, customers,
       round(mrr / nullif(customers, 0), 2)
FROM report ORDER BY month, currency
"""

# Of the MRR at the month's start: what churn and contraction took (gross revenue churn), what
# stayed (gross revenue retention), and what stayed with expansion (net revenue retention).
# Reactivated and new customers were not in the starting MRR, so they are not in these rates.
REVENUE_RETENTION = f"""{MRR_FIGURES}
SELECT to_char(month, 'YYYY-MM'), currency, mrr_at_start, churn, contraction, expansion,
       round((churn + contraction) / nullif(mrr_at_start, 0), 4),
       round((mrr_at_start - churn - contraction) / nullif(mrr_at_start, 0), 4),
       round((mrr_at_start - churn - contraction + expansion) / nullif(mrr_at_start, 0), 4)
FROM report ORDER BY month, currency
"""

# A customer is subscribed at a month's end when their MRR in some currency is not zero. The
# customers paying at a month's end are the running sum of those who started and stopped.
CUSTOMERS = f"""
WITH {_movements("user_id")}"""

CHURN = f"""{CUSTOMERS}, figures AS (
  SELECT month,
         count(*) FILTER (WHERE mrr_before = 0 AND mrr > 0 AND NOT paid_before) AS new,
         count(*) FILTER (WHERE mrr_before = 0 AND mrr > 0 AND paid_before) AS reactivated,
         count(*) FILTER (WHERE mrr_before > 0 AND mrr = 0) AS churned
  FROM movements GROUP BY month
), running AS (
  SELECT h.month, coalesce(new, 0) AS new, coalesce(reactivated, 0) AS reactivated,
         coalesce(churned, 0) AS churned,
         (sum(coalesce(new + reactivated - churned, 0)) OVER (ORDER BY h.month))::bigint
           AS at_end
  FROM history h LEFT JOIN figures f USING (month)
)
SELECT to_char(month, 'YYYY-MM'), at_end - new - reactivated + churned, new, reactivated,
       churned, round(churned::numeric / nullif(at_end - new - reactivated + churned, 0), 4),
       at_end
FROM running WHERE month >= %(first_month)s ORDER BY month
"""

# A customer's cohort is the month of their first non-zero MRR, for good: one who leaves and
# returns is retained again in the months they pay, in that first cohort. A cohort's customers
# paying at a month's end are the running sum of its members who started and stopped paying.
RETENTION = f"""{CUSTOMERS}, with_cohort AS (
  SELECT month, mrr, mrr_before,
         min(month) FILTER (WHERE mrr > 0) OVER (PARTITION BY user_id) AS cohort
  FROM movements
), cohort_changes AS (
  SELECT cohort, month, count(*) FILTER (WHERE month = cohort) AS joined,
         count(*) FILTER (WHERE mrr_before = 0 AND mrr > 0)
           - count(*) FILTER (WHERE mrr_before > 0 AND mrr = 0) AS change
  FROM with_cohort WHERE cohort >= %(first_month)s AND month >= cohort
  GROUP BY cohort, month
), cells AS (
  SELECT c.cohort,
         ((extract(year FROM h.month) - extract(year FROM c.cohort)) * 12
          + extract(month FROM h.month) - extract(month FROM c.cohort))::int AS k,
         sum(coalesce(f.joined, 0)) OVER by_month AS customers,
         sum(coalesce(f.change, 0)) OVER by_month AS retained
  FROM (SELECT DISTINCT cohort FROM cohort_changes) c JOIN history h ON h.month >= c.cohort
       LEFT JOIN cohort_changes f ON f.cohort = c.cohort AND f.month = h.month
  WINDOW by_month AS (PARTITION BY c.cohort ORDER BY h.month)
)
SELECT to_char(cohort, 'YYYY-MM'), k, customers::bigint, retained::bigint,
       round(retained::numeric / customers, 4)
FROM cells WHERE k <= %(max_cohort_months)s ORDER BY cohort, k
"""


# Each state next to the one before it in the subscription's history.
TRANSITIONS = """
transitions AS (
  SELECT stripe_subscription_id AS subscription, tier, status, amount,
         coalesce(state_as_of, created_at) AS at,
         lag(tier) OVER by_time AS tier_before, lag(status) OVER by_time AS status_before
  FROM user_subscriptions
  WINDOW by_time AS (PARTITION BY stripe_subscription_id
                     ORDER BY coalesce(state_as_of, created_at), state_event_id NULLS FIRST)
)"""

SUBSCRIPTIONS = f"""
WITH {TRANSITIONS}, moves AS (
  SELECT date_trunc('month', at AT TIME ZONE 'UTC')::date AS month, tier,
         status_before IS NULL AS started,
         array_position(%(tiers)s::text[], tier)
           > array_position(%(tiers)s::text[], tier_before) AS upgraded,
         array_position(%(tiers)s::text[], tier)
           < array_position(%(tiers)s::text[], tier_before) AS downgraded,
         status = 'canceled' AND status_before IS DISTINCT FROM 'canceled' AS canceled
  FROM transitions WHERE at >= %(start_at)s AND at < %(end_at)s
)
SELECT to_char(month, 'YYYY-MM'), tier, count(*) FILTER (WHERE started),
       count(*) FILTER (WHERE upgraded), count(*) FILTER (WHERE downgraded),
       count(*) FILTER (WHERE canceled)
FROM moves GROUP BY month, tier
HAVING count(*) FILTER (WHERE started OR upgraded OR downgraded OR canceled) > 0
ORDER BY month, array_position(%(tiers)s::text[], tier)
"""

# Stripe's trial conversion: of the subscriptions whose trial started in the month, those that
# went on to a paid state (active or past_due with an amount) by the range's end.
TRIALS = f"""
WITH {MONTHS}, {TRANSITIONS}, trials AS (
  SELECT subscription, min(at) AS trial_at FROM transitions WHERE status = 'trialing'
  GROUP BY subscription
), outcomes AS (
  SELECT date_trunc('month', t.trial_at AT TIME ZONE 'UTC')::date AS month,
         EXISTS (SELECT FROM transitions s
                 WHERE s.subscription = t.subscription AND s.at > t.trial_at
                   AND s.at < %(end_at)s AND s.status = ANY(%(mrr_statuses)s) AND s.amount > 0)
           AS converted
  FROM trials t WHERE t.trial_at >= %(start_at)s AND t.trial_at < %(end_at)s
)
SELECT to_char(month, 'YYYY-MM'), count(o.month), count(*) FILTER (WHERE o.converted),
       round((count(*) FILTER (WHERE o.converted))::numeric / nullif(count(o.month), 0), 4)
FROM months LEFT JOIN outcomes o USING (month)
GROUP BY month ORDER BY month
"""

_FUNNEL_MONTHLY = """
SELECT to_char(date_trunc('month', day), 'YYYY-MM'), sum(viewed)::bigint, sum(carted)::bigint,
       sum(purchased)::bigint,
       round(sum(carted)::numeric / nullif(sum(viewed), 0), 4),
       round(sum(purchased)::numeric / nullif(sum(carted), 0), 4),
       round(sum(purchased)::numeric / nullif(sum(viewed), 0), 4)
FROM {days} GROUP BY 1 ORDER BY 1
"""
FUNNEL_STORED = _FUNNEL_MONTHLY.format(
    days="analytics_funnel_daily WHERE day >= %(start)s AND day < %(end)s"
)
FUNNEL_FROM_EVENTS = _FUNNEL_MONTHLY.format(days=f"({FUNNEL_STEPS}) AS funnel_days")


def _funnel_sql(options: ReportOptions) -> str:
    if options.conversion_window == DEFAULT_CONVERSION_WINDOW:
        return FUNNEL_STORED
    return FUNNEL_FROM_EVENTS


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
SELECT tier, status, count(*) FROM user_subscriptions WHERE is_current
GROUP BY tier, status
ORDER BY array_position(%(tiers)s::text[], tier), array_position(%(statuses)s::text[], status)
"""


def _status_chart(table: ReportTable) -> list[ChartData]:
    return [_pivot(table, "tier", "status", "subscriptions", list(rules.SUBSCRIPTION_STATUSES))]


def _subscriptions_chart(table: ReportTable) -> list[ChartData]:
    return [_pivot(table, "month", "tier", "new", list(rules.SUBSCRIPTION_TIERS))]


def _money(*names: str) -> tuple[Column, ...]:
    return tuple(Column(name, "money") for name in names)


def _counts(*names: str) -> tuple[Column, ...]:
    return tuple(Column(name, "count") for name in names)


def _rates(*names: str) -> tuple[Column, ...]:
    return tuple(Column(name, "rate") for name in names)


MONTH, CURRENCY = Column("month", "text"), Column("currency", "text")

REPORTS: dict[str, ReportDefinition] = {
    report.name: report
    for report in (
        ReportDefinition(
            "revenue", "Revenue by month",
            "Money received as Stripe reported it: one-off payments and paid subscription "
            "invoices in the month paid, refunds in the month refunded (partial ones and those "
            "of invoices too), and the net; per currency, every month present.",
            REVENUE,
            (MONTH, CURRENCY, *_money("one_off", "recurring", "refunds", "net")),
            _revenue_chart,
        ),
        ReportDefinition(
            "mrr", "Monthly recurring revenue and its movements",
            "MRR at each month's end (active and past_due subscriptions, trials excluded) and "
            "how it moved per customer: new, expansion, contraction, churn (a customer's MRR "
            "down to zero) and reactivation (a customer paying again); customers paying and "
            "ARPU; per currency, every month present.",
            MRR,
            (MONTH, CURRENCY, *_money("mrr_at_start", "new", "expansion", "contraction", "churn",
                                      "reactivation", "net_new", "mrr"),
             Column("customers", "count"), Column("arpu", "money")),
            _mrr_chart,
        ),
        ReportDefinition(
            "revenue-retention", "Revenue churn and retention",
            "Of the MRR at the month's start: the share lost to churn and contraction (gross "
            "revenue churn), the share kept (gross revenue retention) and kept with expansion "
            "(net revenue retention); per currency.",
            REVENUE_RETENTION,
            (MONTH, CURRENCY, *_money("mrr_at_start", "churn", "contraction", "expansion"),
             *_rates("gross_revenue_churn_rate", "gross_revenue_retention",
                     "net_revenue_retention")),
            _revenue_retention_chart,
        ),
        ReportDefinition(
            "churn", "Customer churn by month",
            "Paying customers at the month's start, new ones, those who came back, those whose "
            "MRR went to zero (churned), the churn rate (churned / at start) and customers at "
            "the month's end.",
            CHURN,
            (MONTH, *_counts("customers_at_start", "new", "reactivated", "churned"),
             Column("churn_rate", "rate"), Column("customers_at_end", "count")),
            _churn_chart,
        ),
        ReportDefinition(
            "retention", "Customer retention by monthly cohort",
            "Customers grouped by the month they first paid (for good, even after leaving and "
            "coming back): how many were paying at the end of each following month.",
            RETENTION,
            (Column("cohort", "text"), *_counts("months_since_start", "customers", "retained"),
             Column("retention", "rate")),
            _retention_chart,
        ),
        ReportDefinition(
            "subscriptions", "Subscription movements by tier",
            "Per month and tier: subscriptions started, upgraded and downgraded into the tier, "
            "canceled.",
            SUBSCRIPTIONS,
            (MONTH, Column("tier", "text"),
             *_counts("new", "upgraded_to", "downgraded_to", "canceled")),
            _subscriptions_chart,
        ),
        ReportDefinition(
            "trials", "Trial conversion",
            "Subscriptions whose trial started in the month, how many went on to pay, and the "
            "conversion rate.",
            TRIALS,
            (MONTH, *_counts("trials", "converted"), Column("conversion_rate", "rate")),
            _trials_chart,
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
            "Visitors (a session, or a user without one) who viewed a product, then added to a "
            "cart, then bought, each step within the conversion window of the first view "
            "(default 24 hours), counted in the month of the view; the conversion between steps.",
            _funnel_sql,
            (MONTH, *_counts("viewed", "carted", "purchased"),
             *_rates("view_to_cart", "cart_to_purchase", "view_to_purchase")),
            _funnel_chart,
        ),
        ReportDefinition(
            "bot", "Chat bot: resolution, latency, satisfaction",
            "Conversations per month, how many were resolved, the answer latency (weighted by "
            "answers) and the average satisfaction (1-5) of those rated.",
            BOT,
            (MONTH, *_counts("conversations", "resolved"), Column("resolution_rate", "rate"),
             Column("avg_latency_ms", "number"), Column("satisfaction", "number"),
             Column("rated", "count")),
            _bot_chart,
        ),
        ReportDefinition(
            "subscription-status", "Subscriptions by tier and status (today)",
            "Every subscription once, in its current state (the newest of its history); the "
            "date range does not apply.",
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
