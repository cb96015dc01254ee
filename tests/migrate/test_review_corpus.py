"""`migrate review` on a corpus of migrations written for it (tests/migration_corpus/*.sql),
each with the findings it must produce, against a seeded database.

A corpus file starts with comment lines:

- `-- expect: rule:severity[:count], ...`: the afilo-db findings, exactly (empty for a safe
  migration); `count` is the number the finding measured (rows blocked, values lost, rows that
  fail), checked when given. Notes (`:info`) are compared only when the file lists some.
- `-- expect-before-N: ...`: what to expect instead on a server older than release N, where
  PostgreSQL refuses a feature of a later release (`fails-on-copy:error`).
- `-- in-transaction: no`: the SQL runs outside a transaction block (an autocommit block).
- `-- tiny-rows: N`, `-- large-rows: N`: thresholds other than the defaults.

The base: the demo seed (30 products) plus `ledger_entries`, 20,000 rows (a large table at the
default thresholds) and `ledger_archive`, the same shape, empty.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from afilo_db.data.seed import seed
from afilo_db.db.embedded import EmbeddedServer
from afilo_db.knowledge.embedders import get_embedder
from afilo_db.migrate.review import (
    Observer,
    RevisionReview,
    Thresholds,
    measuring,
    review_sql,
)
from tests.conftest import create_database, drop_database, vectors_shared_by_the_run

CORPUS = sorted((Path(__file__).parent.parent / "migration_corpus").glob("*.sql"))
LEDGER_ROWS = 20_000
BASE_SQL = f"""
CREATE TYPE ledger_kind AS ENUM ('debit', 'credit');
CREATE TABLE ledger_entries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id integer NOT NULL,
    kind ledger_kind NOT NULL,
    amount numeric(12, 2) NOT NULL,
    amount_text text,
    memo varchar(40),
    reference text,
    note text,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ledger_entries (account_id, kind, amount, amount_text, memo, reference, note,
                            created_at)
SELECT i % 500,
       CASE WHEN i % 3 = 0 THEN 'credit' ELSE 'debit' END::ledger_kind,
       (i % 1000) / 4.0,
       CASE WHEN i % 10 = 0 THEN 'n/a' WHEN i % 2 = 0 THEN ((i % 100) / 4.0)::text
            ELSE (i % 100)::text END,
       'entry ' || i,
       CASE WHEN i % 4 = 0 THEN NULL ELSE 'ref-' || (i % 7000) END,
       CASE WHEN i % 5 = 0 THEN repeat('x', 30) ELSE NULL END,
       timestamptz '2026-01-01 00:00:00+00' + (i || ' minutes')::interval
FROM generate_series(1, {LEDGER_ROWS}) AS i;
CREATE INDEX ix_ledger_entries_account_id ON ledger_entries (account_id);
CREATE TABLE ledger_archive (LIKE ledger_entries INCLUDING ALL);
ANALYZE ledger_entries;
"""


def directives(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        if not line.startswith("-- "):
            break
        key, _, value = line[3:].partition(":")
        found[key.strip()] = value.strip()
    return found


@dataclass
class Outcome:
    unsafe: bool
    blocked: bool
    expected: Counter[str]
    found: Counter[str]
    counts_expected: int = 0
    counts_exact: int = 0
    missing: list[str] = field(default_factory=list)


def expectation(wanted: dict[str, str], url: str) -> str:
    """`expect`, or on a server older than release N the `expect-before-N` a migration gives
    where PostgreSQL itself refuses it there (a feature of a later release)."""
    with psycopg.connect(url) as connection:
        version = connection.info.server_version // 10000
    earliest = sorted(
        int(key.removeprefix("expect-before-"))
        for key in wanted
        if key.startswith("expect-before-") and version < int(key.removeprefix("expect-before-"))
    )
    return wanted[f"expect-before-{earliest[0]}"] if earliest else wanted["expect"]


def judge(path: Path, url: str) -> Outcome:
    wanted = directives(path)
    expected = Counter(item.strip() for item in expectation(wanted, url).split(",") if item.strip())
    defaults = Thresholds()
    thresholds = Thresholds(
        tiny_rows=int(wanted.get("tiny-rows", defaults.tiny_rows)),
        large_rows=int(wanted.get("large-rows", defaults.large_rows)),
        large_bytes=defaults.large_bytes,
    )
    with measuring(url, "30s") as measurer:
        review: RevisionReview = review_sql(
            measurer,
            path.read_text(),
            in_transaction=wanted.get("in-transaction") != "no",
            thresholds=thresholds,
        )
    with psycopg.connect(url) as rehearsal:
        Observer(rehearsal, commits=False).revision(review, thresholds)
    with_notes = any(":info" in item for item in expected)
    counted = {
        item.rsplit(":", 1)[0] for item in expected if item.count(":") == 2
    }  # rule:severity whose count is given
    found: Counter[str] = Counter()
    outcome = Outcome(
        unsafe=any(item.split(":")[1] == "error" for item in expected),
        blocked=not review.passed,
        expected=expected,
        found=found,
    )
    for statement in review.statements:
        for finding in statement.findings:
            if finding.severity == "info" and not with_notes:
                continue
            key = f"{finding.rule}:{finding.severity}"
            if key in counted:
                key += f":{finding.count}"
            found[key] += 1
    outcome.counts_expected = sum(n for item, n in expected.items() if item.count(":") == 2)
    outcome.counts_exact = sum(
        min(n, found[item]) for item, n in expected.items() if item.count(":") == 2
    )
    return outcome


@pytest.fixture(scope="module")
def seeded_url(server: EmbeddedServer, template_database: str) -> Iterator[str]:
    name = f"corpus_{os.getpid()}"
    url = create_database(server, name, template=template_database)
    with vectors_shared_by_the_run(get_embedder()), psycopg.connect(url) as connection:
        seed(connection, products=30)
        connection.commit()
        connection.autocommit = True
        connection.execute(BASE_SQL)
    yield url
    drop_database(server, name)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 80
    safe = [path for path in CORPUS if ":error" not in directives(path)["expect"]]
    assert len(safe) >= 20 and len(CORPUS) - len(safe) >= 50


OUTCOMES: dict[str, Outcome] = {}


@pytest.mark.parametrize("path", CORPUS, ids=[path.stem for path in CORPUS])
def test_review_finds_what_the_migration_must_produce(seeded_url: str, path: Path) -> None:
    outcome = judge(path, seeded_url)
    OUTCOMES[path.stem] = outcome
    assert sorted(outcome.found.elements()) == sorted(outcome.expected.elements())
    assert outcome.blocked == outcome.unsafe


@dataclass
class Figures:
    migrations: int
    unsafe: int
    blocked: int
    safe: int
    false_alarms: int
    counts: int
    exact: int
    missed: list[str]

    def __str__(self) -> str:
        return (
            f"{self.migrations} migrations; recall {self.blocked}/{self.unsafe} unsafe blocked; "
            f"false alarms {self.false_alarms}/{self.safe} safe blocked; counts exact "
            f"{self.exact}/{self.counts}; missed: {', '.join(self.missed) or 'none'}"
        )


def figures(outcomes: dict[str, Outcome]) -> Figures:
    unsafe = [outcome for outcome in outcomes.values() if outcome.unsafe]
    safe = [outcome for outcome in outcomes.values() if not outcome.unsafe]
    return Figures(
        migrations=len(outcomes),
        unsafe=len(unsafe),
        blocked=sum(outcome.blocked for outcome in unsafe),
        safe=len(safe),
        false_alarms=sum(outcome.blocked for outcome in safe),
        counts=sum(outcome.counts_expected for outcome in outcomes.values()),
        exact=sum(outcome.counts_exact for outcome in outcomes.values()),
        missed=sorted(
            name for name, outcome in outcomes.items() if outcome.unsafe != outcome.blocked
        ),
    )


def test_corpus_figures(seeded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Recall, false alarms and exact counts over the whole corpus, printed."""
    for path in CORPUS:
        if path.stem not in OUTCOMES:
            OUTCOMES[path.stem] = judge(path, seeded_url)
    found = figures(OUTCOMES)
    with capsys.disabled():
        print(f"\nreview corpus: {found}")
    assert found.blocked == found.unsafe
    assert found.false_alarms == 0
    assert found.exact == found.counts
