"""The documentation keeps up with the code: docs/cli.md is what the commands' own help says
(regenerate it with `python -m afilo_db.cli.reference > docs/cli.md`), every command explains
itself, and every setting of config.py is in the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from afilo_db.cli import COMMANDS, reference
from afilo_db.config import Settings

ROOT = Path(__file__).parents[2]
REFERENCE = ROOT / "docs" / "cli.md"
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def rendered() -> str:
    return reference.render()


def test_the_cli_reference_is_current(rendered: str) -> None:
    assert REFERENCE.read_text() == rendered, (
        "docs/cli.md is stale: run `python -m afilo_db.cli.reference > docs/cli.md`"
    )


def test_every_command_has_a_section_and_help_of_its_own(rendered: str) -> None:
    app = typer.main.get_command(reference.full_app())
    context = app.context_class(app, info_name=reference.PROGRAM)
    paths = [path for path, _, _ in reference.walk_commands(app, context, reference.PROGRAM)]
    assert len(paths) > len(COMMANDS)  # the groups' commands are walked too
    for path, command, _ in reference.walk_commands(app, context, reference.PROGRAM):
        assert f"# `{path}`\n" in rendered, path
        assert (command.help or "").strip(), f"`{path}` has no help text"


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    table = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.MULTILINE))
    settings = {name.upper() for name in Settings.model_fields}
    assert settings <= documented, f"settings missing from the README: {settings - documented}"
