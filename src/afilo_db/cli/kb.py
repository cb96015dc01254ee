"""`afilo-db kb ...`: the chat bot's knowledge base: ingest, sync, search, ask, reembed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from afilo_db.cli.common import JsonOption, console, progress_bar, reported_errors
from afilo_db.db.databases import admin_connection
from afilo_db.db.engine import create_app_engine
from afilo_db.db.target import resolve_target
from afilo_db.knowledge import catalog, reembed
from afilo_db.knowledge.embedders import get_embedder
from afilo_db.knowledge.ingestion import active_model, documents_from_paths, ingest
from afilo_db.rules import KNOWLEDGE_CONTENT_TYPES
from afilo_db.services import conversations, knowledge
from afilo_db.services.knowledge import RELEVANCE_THRESHOLD

kb_app = typer.Typer(
    help="The chat bot's knowledge base: ingest, sync, search, ask, reembed.",
    no_args_is_help=True,
)

TypesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--type", help=f"Only these content types ({', '.join(KNOWLEDGE_CONTENT_TYPES)})."
    ),
]


@contextmanager
def _session() -> Iterator[Session]:
    engine = create_app_engine(resolve_target().direct_url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def _print_json(value: Any) -> None:
    print(json.dumps(value, default=str))


@kb_app.command("ingest")
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (.md, .txt, .html).")],
    content_type: Annotated[
        str, typer.Option("--type", help=f"One of {', '.join(KNOWLEDGE_CONTENT_TYPES)}.")
    ] = "docs",
    as_json: JsonOption = False,
) -> None:
    """Chunk, embed and store Markdown, text and HTML files.

    Chunks follow headings and paragraphs within a token budget, with overlap. An unchanged
    chunk is never embedded again (content hash); a changed file re-embeds only its changed
    chunks; files gone from a folder given here lose their chunks. All or nothing.
    """
    with reported_errors():
        documents, folders = documents_from_paths(paths, content_type=content_type)
        with admin_connection(resolve_target().direct_url) as connection:
            embedder = get_embedder(active_model(connection))
            with progress_bar("embedding") as bar:
                task = bar.add_task("chunks", total=None)
                report = ingest(
                    connection,
                    documents,
                    embedder=embedder,
                    remove_missing_under=folders,
                    planned=lambda total: bar.update(task, total=total),
                    progress=lambda count: bar.advance(task, count),
                )
            connection.commit()
        if as_json:
            _print_json(asdict(report))
            return
        console.print(
            f"{report.sources} file(s), {report.chunks} chunk(s): {report.embedded} embedded, "
            f"{report.unchanged} unchanged, {report.deleted} deleted "
            f"({report.sources_removed} source(s) removed)"
        )


@kb_app.command("sync")
def sync_command(
    everything: Annotated[
        bool, typer.Option("--all", help="Queue every product first (a first sync).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-ingest the products changed since the last sync (description and licence terms).

    Triggers on products and variants queue every change, whoever makes it (the services, the
    catalog import, SQL); this embeds what changed, in batches, each committed on its own.
    """
    with reported_errors():
        totals = catalog.SyncReport()
        with admin_connection(resolve_target().direct_url) as connection:
            if everything:
                catalog.queue_all_products(connection)
                connection.commit()
            embedder = get_embedder(active_model(connection))
            with progress_bar("syncing") as bar:
                task = bar.add_task("products", total=catalog.queued_products(connection))
                while True:
                    report = catalog.drain_queue(connection, embedder=embedder)
                    connection.commit()
                    if not report.products:
                        break
                    bar.advance(task, report.products)
                    for name in ("products", "sources", "chunks", "embedded", "unchanged",
                                 "deleted", "sources_removed"):  # fmt: skip
                        setattr(totals, name, getattr(totals, name) + getattr(report, name))
        if as_json:
            _print_json(asdict(totals))
            return
        console.print(
            f"{totals.products} product(s) synced: {totals.embedded} chunk(s) embedded, "
            f"{totals.unchanged} unchanged, {totals.deleted} deleted"
        )


MinRelevanceOption = Annotated[
    float,
    typer.Option(
        help="Leave out passages whose relevance (0-1, the calibrated probability that the"
        " passage answers the question) is below this; 0 shows every passage found."
        f" Default: the threshold chosen on the labelled questions ({RELEVANCE_THRESHOLD}).",
    ),
]
# The exit code when no passage reaches the threshold: "not found", as the README's table says.
NO_GOOD_MATCH_EXIT = 3


@kb_app.command("search")
def search_command(
    question: Annotated[str, typer.Argument(help="What a buyer asks.")],
    types: TypesOption = None,
    limit: Annotated[int, typer.Option(help="How many passages.")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, fulltext or vector.")] = "hybrid",
    unpublished: Annotated[bool, typer.Option(help="Include unpublished passages.")] = False,
    min_relevance: MinRelevanceOption = RELEVANCE_THRESHOLD,
    as_json: JsonOption = False,
) -> None:
    """Hybrid search: any-term full text, exact code-like tokens and vector similarity.

    Shows each passage with its relevance, its source, its fused score, what each list
    contributed and its rank there. Exit code 3 ("no good match") when no passage reaches
    --min-relevance; with --json the list is then empty.
    """
    with reported_errors(), _session() as session:
        passages = knowledge.search(
            session, question, types=types, limit=limit, mode=mode,
            include_unpublished=unpublished, min_relevance=min_relevance,
        )  # fmt: skip
        session.rollback()
    if as_json:
        _print_json([asdict(passage) for passage in passages])
    else:
        _print_passages(question, passages, min_relevance)
    if not passages:
        raise typer.Exit(NO_GOOD_MATCH_EXIT)


def _print_passages(question: str, passages: list[knowledge.Passage], threshold: float) -> None:
    if not passages:
        console.print(
            f"no good match for {question!r}: no passage reaches relevance {threshold}",
            highlight=False,
            markup=False,
        )
        return
    table = Table(title=f"passages for {question!r}")
    for column in ("#", "relevance", "score", "text", "code", "vector", "type", "title", "source"):
        table.add_column(column)
    for position, passage in enumerate(passages, 1):
        table.add_row(
            str(position), f"{passage.relevance:.2f}", f"{passage.score:.4f}",
            _contribution(passage.lexical_score, passage.fulltext_rank),
            _contribution(passage.code_score, passage.code_rank),
            _contribution(passage.vector_score, passage.vector_rank),
            passage.content_type, passage.title, passage.source or "-",
        )  # fmt: skip
    console.print(table)
    for position, passage in enumerate(passages, 1):
        console.print(f"[bold][{position}] {passage.title}[/]", highlight=False)
        console.print(passage.content, highlight=False, markup=False)


def _contribution(score: float, rank: int | None) -> str:
    """A list's share of the fused score and the passage's rank there ("-": not found)."""
    return "-" if rank is None else f"{score:.4f} (#{rank})"


@kb_app.command("ask")
def ask_command(
    question: Annotated[str, typer.Argument(help="What a buyer asks.")],
    user: Annotated[
        str | None, typer.Option(help="The asking user's Clerk id (with --conversation).")
    ] = None,
    conversation: Annotated[
        str | None, typer.Option(help="A conversation of that user: its recent turns.")
    ] = None,
    budget: Annotated[int, typer.Option(help="Token budget of the context.")] = 1500,
    types: TypesOption = None,
    min_relevance: MinRelevanceOption = RELEVANCE_THRESHOLD,
    as_json: JsonOption = False,
) -> None:
    """Print the context a bot would receive for QUESTION: recent turns and cited passages.

    afilo-db does not generate the answer: that is the application's model's job. When no
    passage reaches --min-relevance nothing is cited, the context says there is no good match
    ("no_good_match": true with --json) and the exit code is 3.
    """
    with reported_errors(), _session() as session:
        context = conversations.build_context(
            session, question, clerk_user_id=user,
            conversation_id=uuid.UUID(conversation) if conversation else None,
            budget=budget, types=types, min_relevance=min_relevance,
        )  # fmt: skip
        session.rollback()
    if as_json:
        _print_json(
            {
                "question": context.question,
                "tokens": context.tokens,
                "budget": context.budget,
                "cited_ids": context.cited_ids,
                "no_good_match": context.no_good_match,
                "turns": [asdict(turn) for turn in context.turns],
                "passages": [
                    {"citation": item.citation, **asdict(item.passage)} for item in context.passages
                ],
                "prompt": context.render(),
            }
        )
    else:
        print(context.render())
        console.print(
            f"\n{context.tokens} of {context.budget} tokens; "
            + (
                "no good match: nothing cited"
                if context.no_good_match
                else "cited: "
                + ", ".join(f"[{item.citation}] {item.passage.id}" for item in context.passages)
            ),
            highlight=False,
            markup=False,
        )
    if context.no_good_match:
        raise typer.Exit(NO_GOOD_MATCH_EXIT)


@kb_app.command("reembed")
def reembed_command(
    model: Annotated[
        str,
        typer.Option(
            help="The embedding model to move to: all-MiniLM-L6-v2-int8 (the default, English),"
            " use-multilingual-v3 (questions in 16 languages; needs afilo-db[multilingual]), or"
            " a name a plug-in registers."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Move every passage to another embedding model without downtime.

    The new vectors are backfilled beside the live ones in small committed batches (searches
    go on with the old model), then switched in one transaction. Exit 1 when the model's
    package is not installed (nothing is written), 2 for an unknown model or a base already on
    it.
    """
    with reported_errors():
        embedder = get_embedder(model)
        with admin_connection(resolve_target().direct_url) as connection:
            reembed.check_target(connection, embedder)
            with progress_bar("re-embedding") as bar:
                task = bar.add_task("rows", total=reembed.pending(connection, embedder))
                switched = reembed.move(
                    connection, embedder, progress=lambda count: bar.advance(task, count)
                )
        if as_json:
            _print_json({"model": model, "switched": switched})
            return
        console.print(f"{switched} passage(s) now on {model}")
