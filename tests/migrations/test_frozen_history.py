"""History does not depend on the present: a packaged revision runs the SQL frozen in its own file,
whatever the live modules it was once generated from say today."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from afilo_db.migrate.revisions import revision_checksum, revision_sql
from afilo_db.migrations.support import PACKAGED_VERSIONS
from afilo_db.security import policies, roles

OFFLINE_URL = "postgresql://offline/afilo"
# sha256 of every packaged revision file. A revision, once released, never changes: `migrate
# apply` trusts these checksums. Add a line for a new revision; never edit one.
PACKAGED_CHECKSUMS = {
    "0001_baseline": "d3bc9baa154ae0d98381bb6fdd408c07a74cabbc47ca8c9bb3288213749cd393",
    "0002_row_level_security": "1d7590f10e1b4f41177ffbc70e74d43867e3756473ab3b3ba35e9d31393d781a",
    "0003_knowledge": "a395864202d0857d0aab196d6c5a0b29d9af37d142c2f7d0014b9695dff42575",
    "0004_billing": "62ca826f2c395b10f8490ac48a483f22bbe0fa4c0a7be2c0c5431aae6cd21db8",
    "0005_analytics": "55aec979620fb2e726dc931f20bfe7bc01b103db35650b27affc629e2d35efc6",
    "0006_data_rules": "7cc15a3e58760dba271ae898f10581b949f6ec2bd7cc8b99428ec0c359527d86",
    "0007_knowledge_recall": "d5ed58d9935951284fff7579909973767106c9b183a50aaff7908490ef2c1497",
    "0008_fast_format_checks": "20551b7f8e46a84783852543508f7cdd4a6ce0f812d5777ac2155d507147171e",
    "0009_catalog_policies": "d4ba3d97e00a06b83fbcaf13775d00eb4edcaaf18f754c88f54085d7a3583b20",
    "0010_inline_user_lookup": "808b3360bbc00da1bb9cb3004bc196ccec63fab0f58faa7cc3d61796fdb319c9",
    "0011_variant_product_status": "de33d8725938772a1d6b06574c6152e2da9d63807c78084c378def83d751414d",
    "0012_user_read_functions": "9128732a59cdab38fb0ccffec56d9e79cca165d4c8c1cc42f347e52262c17f43",
    "0013_user_read_functions_as_app": "72f66239cde396e4ea670fd455f1bd3477ff46e86253a0c42470305c745f61cc",
    "0014_product_lists_without_nulls": "0b6affa9520f65b1b13a9e1fb4c118efc4460731d68b3b132394d9ab7b7e79dd",
    "0017_buyer_text_and_scoped_reads": "3df7aac56b926c260c6187b11ab6f22006294b341aabd56b1bbbd68821a18b77",
    "0016_analytics_from_billing": "56a422a49926d904a92cea812129fa61990a88644f7728ce9bc37a16307516eb",
    "0015_stripe_ids_event_outcomes": "9b620e27ba88ed9c99dc10596f73ad4c62e61005db597eed2452ef9cbaf81add",
    "0019_mrr_by_billing_interval": "d93634388ef2025351e3a21b69040d51098bfabceb29129cb98f7480dd84f852",
    "0020_knowledge_term_counts": "163e754966614664e764e8682004991f15aabb9e0337a5258f87412c2075198d",
    "0021_renewals_counted_once": "80d408b08e4d3a68e58e5a685c0b795ab7c37c0573160b70b745da7f56691a37",
    "0022_invoice_payment_links": "28c2f36e2df033cd487013ca4f1848cfb8bf60fc08aa4faf49c88668569009b4",
}


def packaged_revision_files() -> list[Path]:
    return sorted(path for path in PACKAGED_VERSIONS.glob("*.py") if path.name != "__init__.py")


def test_every_packaged_revision_has_a_recorded_checksum() -> None:
    assert {path.stem for path in packaged_revision_files()} == set(PACKAGED_CHECKSUMS)


@pytest.mark.parametrize("revision", sorted(PACKAGED_CHECKSUMS))
def test_packaged_revision_checksums_are_stable(revision: str) -> None:
    assert revision_checksum(revision) == PACKAGED_CHECKSUMS[revision]


# Loads each packaged revision for real, in one fresh interpreter (one per revision cost a second
# of start-up each), with no afilo_db module loaded before it: what each load pulled in.
_LOADER = """
import importlib.util, json, sys
loaded = {}
for path in sys.argv[1:]:
    for name in [name for name in sys.modules if name.startswith("afilo_db")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location(f"revision_{len(loaded)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loaded[path] = sorted(name for name in sys.modules if name.startswith("afilo_db"))
print(json.dumps(loaded))
"""


@pytest.fixture(scope="module")
def live_modules_each_revision_loads() -> dict[str, list[str]]:
    paths = [str(path) for path in packaged_revision_files()]
    output = subprocess.run(
        [sys.executable, "-c", _LOADER, *paths], capture_output=True, text=True, check=True
    ).stdout
    loaded: dict[str, list[str]] = json.loads(output)
    return loaded


@pytest.mark.parametrize("path", packaged_revision_files(), ids=lambda path: path.stem)
def test_revisions_import_nothing_of_afilo_db(
    path: Path, live_modules_each_revision_loads: dict[str, list[str]]
) -> None:
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert not [name for name in imported if name and name.startswith("afilo_db")]
    # And loading it for real pulls in no live module either.
    assert live_modules_each_revision_loads[str(path)] == []


def test_editing_the_policies_cannot_change_what_0002_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    before = revision_sql(OFFLINE_URL, "0002_row_level_security")

    def edited() -> list[str]:
        return ["CREATE POLICY edited_after_release ON products USING (true)"]

    monkeypatch.setattr(policies, "upgrade_statements", edited)
    monkeypatch.setattr(policies, "downgrade_statements", edited)
    monkeypatch.setattr(roles, "CREATE_ROLES_SQL", "SELECT 'edited roles'")
    after = revision_sql(OFFLINE_URL, "0002_row_level_security")
    assert after == before
    assert "edited" not in after


def test_0002_runs_the_sql_committed_in_its_file() -> None:
    rendered = revision_sql(OFFLINE_URL, "0002_row_level_security")
    source = ast.parse((PACKAGED_VERSIONS / "0002_row_level_security.py").read_text())
    frozen = [
        str(constant.value).strip()
        for node in source.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id in ("ROLES", "POLICIES_UP")
        and isinstance(node.value, ast.Tuple)
        for constant in node.value.elts
        if isinstance(constant, ast.Constant)
    ]
    assert len(frozen) > 100
    position = 0
    for statement in frozen:
        found = rendered.find(statement, position)
        assert found >= 0, f"not rendered, or out of order: {statement[:80]}"
        position = found + len(statement)
