"""squawk's rules against afilo-db's findings: each one covered by a finding of afilo-db's own,
or overruled with a reason (docs/migrate-review.md lists both)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from afilo_db.migrate.review.findings import RECIPES
from afilo_db.migrate.review.lint import (
    SQUAWK_RULES,
    SQUAWK_SYNTAX_ERROR,
    squawk_executable,
    squawk_finding,
)

RULES = sorted(SQUAWK_RULES.keys() - {SQUAWK_SYNTAX_ERROR})

CORPUS = sorted((Path(__file__).parent.parent / "migration_corpus").rglob("*.sql"))


def squawk_run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(squawk_executable()), *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_every_rule_in_the_mapping_is_one_squawk_knows() -> None:
    result = squawk_run("--exclude", ",".join(RULES), "/dev/null")
    assert result.returncode == 0, result.stderr


def test_each_rule_is_covered_by_findings_afilo_db_has_or_overruled_with_a_reason() -> None:
    for rule, (covered_by, reason) in SQUAWK_RULES.items():
        assert covered_by or reason, rule
        assert set(covered_by) <= RECIPES.keys(), rule


def test_every_rule_squawk_reports_on_the_corpus_is_in_the_mapping() -> None:
    # Opt-in rules included: the mapping answers for them too.
    result = squawk_run("--reporter", "json", "--include", ",".join(RULES), *map(str, CORPUS))
    assert result.returncode in (0, 1), result.stderr
    reported = {violation["rule_name"] for violation in json.loads(result.stdout or "[]")}
    assert len(reported) > 15
    assert sorted(reported - SQUAWK_RULES.keys()) == []


def test_a_squawk_finding_says_what_covers_it_or_why_it_is_overruled() -> None:
    covered = squawk_finding({"rule_name": "renaming-column", "message": "Renaming a column"})
    assert covered.message.endswith("(afilo-db: breaking-change)")
    overruled = squawk_finding({"rule_name": "prefer-text-field", "message": "Prefer text"})
    assert "afilo-db overrules it: a modelling rule" in overruled.message


def test_the_docs_list_every_rule_with_its_finding_or_reason() -> None:
    page = (Path(__file__).parents[2] / "docs" / "migrate-review.md").read_text()
    for rule in SQUAWK_RULES:
        assert f"| `{rule}` |" in page, rule
