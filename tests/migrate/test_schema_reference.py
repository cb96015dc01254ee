"""docs/schema.md, the schema's reference (`afilo-db generate`), describes the schema the
migrations build: a revision that changes it comes with the regenerated reference, as
`migrate status` asks ("schema docs: stale")."""

from __future__ import annotations

from pathlib import Path

import pytest

from afilo_db.migrate.docs import documented_hash, live_schema_hash

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "schema.md"


@pytest.mark.embedded_only("the reference is generated on the embedded server's PostgreSQL")
def test_the_schema_reference_describes_the_migrated_schema(database_url: str) -> None:
    assert documented_hash(REFERENCE) == live_schema_hash(database_url), (
        "docs/schema.md is stale: run `afilo-db generate` on the migrated database"
    )
