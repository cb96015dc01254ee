"""`afilo-db migrate ...`: schema migrations and the checklist each one goes through."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from afilo_db.cli.common import JsonOption, console, errors, print_json, reported_errors
from afilo_db.db.target import resolve_target
from afilo_db.errors import OperationError, ValidationError
from afilo_db.migrate import checklist, rehearsal, review
from afilo_db.migrate.docs import DOCS_DIRECTORY
from afilo_db.migrate.revisions import deploy, new_revision

migrate_app = typer.Typer(
    help="Schema migrations (Alembic) and their checklist: new, review, test, apply, status, "
    "confirm.",
    no_args_is_help=True,
)

DocsOption = Annotated[
    Path, typer.Option("--docs", help="Where `afilo-db generate` writes schema.md.")
]
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


@migrate_app.command("deploy")
def migrate_deploy(as_json: JsonOption = False) -> None:
    """Apply every pending migration (safe to run concurrently: an advisory lock serializes runs)."""
    with reported_errors():
        applied = deploy(resolve_target().direct_url)
        if as_json:
            print_json({"applied": applied})
            return
        console.print(
            f"applied: {', '.join(applied)}" if applied else "nothing to apply: at head",
            soft_wrap=True,
        )


@migrate_app.command("new")
def migrate_new(
    name: Annotated[str, typer.Argument(help="What the change does, e.g. 'add product subtitle'.")],
) -> None:
    """Autogenerate a revision from the difference between the models and the database (at head).
    Covers tables, columns, indexes (GIN, HNSW, expression, partial), CHECK and EXCLUDE
    constraints, extensions, functions and policies; indexes on existing tables are built
    concurrently. Writes to $AFILO_MIGRATIONS_DIR when set, else to the packaged revisions."""
    with reported_errors():
        path = new_revision(resolve_target().direct_url, name)
        if path is None:
            console.print("nothing to migrate: the database matches the models")
        else:
            console.print(f"generated {path}\nnext: afilo-db migrate review")


@migrate_app.command("review")
def migrate_review(
    revision: Annotated[
        str | None, typer.Argument(help="Review pending revisions up to this one (default: all).")
    ] = None,
    tiny_rows: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="A table of at most this many rows is tiny: blocking it is a note there "
            "(default: AFILO_REVIEW_TINY_ROWS, 0).",
        ),
    ] = None,
    large_rows: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="From this many rows a table is large: scans under a lock become errors "
            "(default: AFILO_REVIEW_LARGE_ROWS, 10000).",
        ),
    ] = None,
    large_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="From this many bytes a table is large (default: AFILO_REVIEW_LARGE_BYTES, "
            "64 MiB).",
        ),
    ] = None,
    measure_timeout: Annotated[
        str | None,
        typer.Option(
            help="How long one measurement, or one statement run on the rehearsal copy, may "
            "take, lock waits included, before it counts as unmeasured, an error (default: "
            "AFILO_REVIEW_MEASURE_TIMEOUT, 60s).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the exact SQL of the pending revisions and review it: squawk's lint, the lock each
    statement takes and on which table, table rewrites and scans, transactionality, rows
    affected, data lost and rows breaking a new constraint (measured on the database), security
    changes against the policies' contract, and changes that break the running code, each with
    a safe recipe. Then each statement is run on a scratch copy of the database and observed:
    locks held, tables rewritten, rows changed and lost, errors, access widened or revoked;
    --json gives the predicted and the observed effect of each statement side by side. A
    statement the review's allow list does not classify, and a measurement that fails or times
    out, are errors. Severity follows the measured size of each table. Exits 1 on any error."""
    with reported_errors():
        if measure_timeout is not None:
            _check_duration("measure-timeout", measure_timeout)
        defaults = review.settings_thresholds()
        thresholds = review.Thresholds(
            tiny_rows=defaults.tiny_rows if tiny_rows is None else tiny_rows,
            large_rows=large_rows or defaults.large_rows,
            large_bytes=large_bytes or defaults.large_bytes,
        )
        result = review.review_pending(
            resolve_target().direct_url, revision, thresholds, measure_timeout
        )
    if as_json:
        print(json.dumps(result.as_dict(), default=str))
    else:
        _print_review(result)
    if not result.passed:
        raise OperationError("the review found errors (listed above): fix them before applying")


def _print_review(result: review.Review) -> None:
    if not result.revisions:
        console.print("nothing pending to review")
    for revision in result.revisions:
        console.rule(f"{revision.revision}  ({'passed' if revision.passed else 'FAILED'})")
        console.print(escape(revision.sql.strip()), highlight=False)
        table = Table(title="statements")
        for column in (
            "#",
            "statement",
            "table",
            "lock (blocks)",
            "rewrite",
            "in tx",
            "measured",
            "observed on a copy",
        ):
            table.add_column(column)
        for statement in revision.statements:
            lock = f"{statement.lock} ({statement.blocks})" if statement.lock else "-"
            if statement.other_locks:
                lock += "; " + ", ".join(f"{t}: {m}" for t, m in statement.other_locks.items())
            measured = dict(statement.measurements)
            if statement.table_rows is not None:
                measured = {"rows": statement.table_rows, **measured}
            table.add_row(
                str(statement.index),
                escape(statement.sql.splitlines()[0][:70]),
                statement.table or "-",
                lock,
                "yes" if statement.rewrites else ("scan" if statement.scans else "no"),
                ("yes" if statement.in_transaction else "no")
                + ("" if statement.transactional else " (must not)"),
                ", ".join(f"{k}: {v}" for k, v in measured.items()) or "-",
                escape(_observed_words(statement.observed)),
            )
        console.print(table)
        findings = [(s.index, f) for s in revision.statements for f in s.findings] + revision.lint
        for index, finding in findings:
            style = SEVERITY_STYLE[finding.severity]
            console.print(
                f"[{style}]{finding.severity}[/] {escape(f'[{finding.source}:{finding.rule}]')} "
                f"statement {index}: {escape(finding.message)}",
                highlight=False,
            )
            if finding.recipe:
                console.print(f"    safe recipe: {escape(finding.recipe)}", highlight=False)
        if not findings:
            console.print("no findings")


def _observed_words(observed: dict[str, Any] | None) -> str:
    """What the rehearsal copy showed, in a few words; disagreements with the prediction."""
    if observed is None:
        return "-"
    if not observed["ran"] or observed["failed"] or observed["unmeasured"]:
        return str(observed["failed"] or observed["unmeasured"] or observed["note"])
    words = [f"{table}: {lock}" for table, lock in observed["locks"].items()]
    words += [f"rewrote {table}" for table in observed["rewritten"]]
    words += [f"lost {name}: {count}" for name, count in observed["rows_lost"].items()]
    words += [f"differs: {item}" for item in observed["disagreements"]]
    return "; ".join(words) or "no lock, no loss"


@migrate_app.command("test")
def migrate_test(as_json: JsonOption = False) -> None:
    """Rehearse the pending revisions on a scratch copy of the database (CREATE DATABASE ...
    TEMPLATE, or pg_dump/pg_restore): upgrade with timings, check the result matches the models,
    downgrade and upgrade again, then drop the copy. The database itself is not changed."""
    with reported_errors():
        result = rehearsal.rehearse(
            resolve_target().direct_url, progress=lambda step: errors.print(f"… {step}")
        )
    if as_json:
        print(json.dumps({**asdict(result), "passed": result.passed}))
    else:
        if not result.revisions:
            console.print("nothing pending to test")
        else:
            console.print(f"copied with {result.copied_with}")
            for label, milliseconds in result.timings_ms.items():
                console.print(f"  {label}: {milliseconds:,.0f} ms")
            for difference in result.model_differences:
                console.print(f"[red]differs from the models:[/] {escape(difference)}")
            if result.failure:
                console.print(f"[bold red]failed:[/] {escape(result.failure)}")
            console.print("passed" if result.passed else "[bold red]FAILED[/]")
    if not result.passed:
        raise OperationError(
            "the rehearsal on a copy failed (see above); the database itself is unchanged"
        )


@migrate_app.command("apply")
def migrate_apply(
    lock_timeout: Annotated[
        str, typer.Option(help="lock_timeout for each statement.")
    ] = checklist.DEFAULT_LOCK_TIMEOUT,
    statement_timeout: Annotated[
        str, typer.Option(help="statement_timeout for each statement.")
    ] = checklist.DEFAULT_STATEMENT_TIMEOUT,
    accept_unmeasured: Annotated[
        bool,
        typer.Option(
            "--accept-unmeasured",
            help="Apply revisions whose review could not measure or classify something (a "
            "timeout, a lock held elsewhere, a DO block); recorded in the migration log with "
            "what was not measured.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The production step: refuses unless every pending revision passed review and test
    unchanged; backs up with pg_dump first; holds an advisory lock; applies each revision in a
    transaction of its own (index builds concurrently, outside it) with lock and statement
    timeouts; records who applied what, when, with which checksum and how long it took."""
    with reported_errors():
        _check_duration("lock-timeout", lock_timeout)
        _check_duration("statement-timeout", statement_timeout)
        result = checklist.apply(
            resolve_target().direct_url,
            lock_timeout=lock_timeout,
            statement_timeout=statement_timeout,
            progress=lambda step: errors.print(f"… {step}"),
            accept_unmeasured=accept_unmeasured,
        )
    if as_json:
        print(json.dumps(asdict(result), default=str))
        return
    for drift in result.drift:
        console.print(f"[yellow]drift:[/] {drift.revision} was edited after it was applied")
    if not result.applied:
        console.print("nothing to apply: at head")
        return
    console.print(f"backup: {result.backup}")
    for applied in result.applied:
        console.print(f"applied {applied.revision} in {applied.duration_ms:,.0f} ms")
    console.print("next: afilo-db generate, then afilo-db migrate confirm REVISION")


def _check_duration(name: str, value: str) -> None:
    if not value.strip() or not value.strip()[0].isdigit():
        raise ValidationError({name: "a PostgreSQL duration such as 5s, 500ms or 30min"})


CHECKLIST_COLUMNS = (
    ("gen", "generated"),
    ("review", "reviewed"),
    ("test", "tested"),
    ("backup", "backed_up"),
    ("apply", "applied"),
    ("docs", "regenerated"),
    ("code", "confirmed"),
)


@migrate_app.command("status")
def migrate_status(docs: DocsOption = DOCS_DIRECTORY, as_json: JsonOption = False) -> None:
    """Applied and pending revisions, drift (models against database, revision files edited after
    they were applied), whether docs/schema.md is up to date, and each revision's checklist."""
    with reported_errors():
        result = checklist.status(resolve_target().direct_url, docs)
    if as_json:
        print(json.dumps(result.as_dict(), default=str))
        return
    console.print(f"current revision: {result.current or 'none'}")
    console.print(f"pending: {', '.join(result.pending) or 'none'}")
    if result.model_drift:
        why = " (expected until the pending revisions are applied)" if result.pending else ""
        console.print(f"[yellow]models differ from the database{why}:[/]")
        for difference in result.model_drift:
            console.print(f"  {escape(difference)}")
    for drift in result.file_drift:
        console.print(
            f"[bold red]drift:[/] {drift.revision} was edited after it was applied "
            f"(applied {drift.applied_checksum[:12]}, now {(drift.current_checksum or 'missing')[:12]})"
        )
    console.print(
        f"schema docs: {'up to date' if result.docs_fresh else 'stale: run afilo-db generate'}"
    )
    if result.checklists:
        # Short headers, so that the table fits an 80-column terminal; the legend says them whole.
        table = Table(title="checklist")
        table.add_column("revision", overflow="fold")
        for header, _step in CHECKLIST_COLUMNS:
            table.add_column(header, justify="center", no_wrap=True)
        for item in result.checklists:
            marks = ("✓" if getattr(item, step) else "·" for _header, step in CHECKLIST_COLUMNS)
            table.add_row(item.revision, *marks)
        console.print(table)
        console.print(
            "  "
            + ", ".join(
                f"{header}: {step.replace('_', ' ')}" for header, step in CHECKLIST_COLUMNS
            ),
            style="dim",
        )
        for item in result.checklists:
            if item.failure:
                console.print(f"[bold red]{item.revision}[/] {escape(item.failure)}")
    console.print("[green]clean[/]" if result.clean else "not clean")


@migrate_app.command("confirm")
def migrate_confirm(
    revision: Annotated[str, typer.Argument(help="An applied revision.")],
) -> None:
    """Tick the last step by hand: the application code works with REVISION applied."""
    with reported_errors():
        checklist.confirm(resolve_target().direct_url, revision)
        console.print(f"confirmed {revision}")
