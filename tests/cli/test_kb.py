"""`afilo-db kb ...` as an operator runs it, against a test database (DATABASE_URL); in the
test's process, so that the embedding model loads once (tests/cli/invoke.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli.invoke import in_process


def kb(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return in_process({"DATABASE_URL": database_url}, "kb", *args)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "licences.md").write_text(
        "# Licences\n\n## Refunds\n\nRefunds are possible within 30 days for error QX-7731.\n\n"
        "## Seats\n\nA studio licence covers eight designers.\n"
    )
    (tmp_path / "page.html").write_text("<h1>Shipping</h1><p>Digital goods arrive by email.</p>")
    return tmp_path


def test_ingest_search_ask_from_the_command_line(database_url: str, folder: Path) -> None:
    first = kb(database_url, "ingest", str(folder), "--type", "licence", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) | {"files": []} == {
        "sources": 2, "chunks": 3, "embedded": 3, "unchanged": 0, "deleted": 0,
        "sources_removed": 0, "files": [],
    }  # fmt: skip
    again = json.loads(
        kb(database_url, "ingest", str(folder), "--type", "licence", "--json").stdout
    )
    assert (again["embedded"], again["unchanged"]) == (0, 3)

    found = kb(database_url, "search", "QX-7731", "--json", "--limit", "2")
    assert found.returncode == 0, found.stderr
    best = json.loads(found.stdout)[0]
    assert best["title"] == "Licences > Refunds" and best["fulltext_rank"] == 1
    assert best["source"] == (folder / "licences.md").resolve().as_uri()

    shown = kb(database_url, "search", "how many people can use it", "--min-relevance", "0")
    assert "Licences > Seats" in shown.stdout and "relevance" in shown.stdout

    asked = json.loads(kb(database_url, "ask", "Can I get a refund?", "--json").stdout)
    assert asked["cited_ids"] and asked["tokens"] <= asked["budget"]
    assert not asked["no_good_match"]
    assert "[1]" in asked["prompt"] and asked["prompt"].endswith("user: Can I get a refund?")


def test_no_good_match_exits_3_and_cites_nothing(database_url: str, folder: Path) -> None:
    assert kb(database_url, "ingest", str(folder), "--type", "licence").returncode == 0
    searched = kb(database_url, "search", "What is the capital of Mongolia?")
    assert searched.returncode == 3 and "no good match" in searched.stdout
    as_json = kb(database_url, "search", "???", "--json")
    assert as_json.returncode == 3 and json.loads(as_json.stdout) == []
    everything = kb(database_url, "search", "???", "--json", "--min-relevance", "0")
    assert everything.returncode == 0 and json.loads(everything.stdout)
    asked = kb(database_url, "ask", "what does error AF-E423 mean", "--json")
    assert asked.returncode == 3
    context = json.loads(asked.stdout)
    assert context["no_good_match"] and context["cited_ids"] == [] and context["passages"] == []
    assert "Sources: none" in context["prompt"]
    spoken = kb(database_url, "ask", "Tell me a joke about penguins")
    assert spoken.returncode == 3 and "no good match" in spoken.stdout


def test_bad_input_exits_2_naming_the_field(database_url: str, folder: Path) -> None:
    wrong_type = kb(database_url, "ingest", str(folder), "--type", "gossip")
    assert wrong_type.returncode == 2 and "type: must be one of" in wrong_type.stderr
    empty = kb(database_url, "search", "   ")
    assert empty.returncode == 2 and "question: must not be empty" in empty.stderr
    threshold = kb(database_url, "search", "refund", "--min-relevance", "2")
    assert (
        threshold.returncode == 2 and "min_relevance: must be between 0 and 1" in threshold.stderr
    )
    unknown = kb(database_url, "reembed", "--model", "no-such-model")
    assert unknown.returncode == 2 and "model: must be one of" in unknown.stderr
    missing = kb(database_url, "ingest", str(folder / "nope.md"))
    assert missing.returncode == 3
