"""`afilo-db generate`: regenerate what derives from the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from afilo_db.cli.common import console, reported_errors
from afilo_db.db.target import resolve_target
from afilo_db.migrate.docs import DOCS_DIRECTORY, generate


def generate_command(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for schema.md and schema.svg.")
    ] = DOCS_DIRECTORY,
) -> None:
    """Write the schema reference (schema.md: every table, column, constraint, index and policy
    of the migrated database, with a Mermaid ER diagram) and the diagram as an image (schema.svg,
    drawn by Graphviz). `migrate status` tells when they are stale."""
    with reported_errors():
        docs = generate(resolve_target().direct_url, out)
        console.print(f"wrote {docs.markdown} and {docs.image} (schema {docs.schema_hash[:12]})")
