"""The held-out part of the review corpus (tests/migration_corpus/held_out/): written, with
its expectations, before the review ever ran on it, and never tuned on. Its figures are printed
and held to the issue's goal: every dangerous migration blocked, at most 1 in 20 safe ones.
A file of its own, so that it runs beside the tuned-on corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.migrate.test_review_corpus import figures, judge, seeded_url

HELD_OUT = sorted((Path(__file__).parent.parent / "migration_corpus" / "held_out").glob("*.sql"))
__all__ = ["seeded_url"]  # the corpus's base database, a fixture of this module too


def test_held_out_figures(seeded_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    found = figures({path.stem: judge(path, seeded_url) for path in HELD_OUT})
    with capsys.disabled():
        print(f"\nheld-out corpus: {found}")
    assert found.migrations >= 40
    assert found.blocked == found.unsafe
    assert found.false_alarms * 20 <= found.safe
