"""`migrate review` measures a column type change on every supported server: before PostgreSQL
16 there is no pg_input_is_valid, and the review must neither fail nor block a safe change there.
The corpus's type changes are judged through a relay that makes the server report 15
(tests/version_proxy.py), and must come out exactly as on the server itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.migrate.test_review_corpus import CORPUS, judge, seeded_url
from tests.version_proxy import server_reporting_version

TYPE_CHANGES = [path for path in CORPUS if " TYPE " in path.read_text()]

__all__ = ["seeded_url"]  # the corpus's seeded database, a fixture of this module too


@pytest.fixture(scope="module")
def server_reporting_15(seeded_url: str) -> Iterator[str]:
    with server_reporting_version(seeded_url, "15.18") as url:
        yield url


def test_the_corpus_has_type_changes_that_fail_and_that_pass() -> None:
    names = {path.stem for path in TYPE_CHANGES}
    assert {"09_type_change_narrowing_fails", "98_text_to_numeric_fails"} <= names
    assert {"101_varchar_widened", "94_int_to_smallint_fits"} <= names


@pytest.mark.parametrize("path", TYPE_CHANGES, ids=[path.stem for path in TYPE_CHANGES])
def test_a_type_change_is_judged_on_15_as_the_corpus_expects(
    server_reporting_15: str, path: Path
) -> None:
    outcome = judge(path, server_reporting_15)
    assert sorted(outcome.found.elements()) == sorted(outcome.expected.elements())
    assert outcome.blocked == outcome.unsafe
