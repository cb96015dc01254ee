"""The order in which `make test` hands files to its workers (tests/conftest.py)."""

from __future__ import annotations

from tests.conftest import LONG_RUNNING_FIRST, TESTS_FOLDER, long_running_rank


def test_every_long_running_entry_names_a_folder_or_file_of_the_tests() -> None:
    missing = [entry for entry in LONG_RUNNING_FIRST if not (TESTS_FOLDER / entry).exists()]
    assert missing == [], "renamed or removed: update LONG_RUNNING_FIRST"


def test_heavy_folders_and_files_come_first_in_their_listed_order() -> None:
    paths = [
        "cli/test_up.py",
        "studio/test_browser.py",
        "services/test_product_query.py",
        "migrate/test_push.py",
        "db/test_versions.py",
        "services/test_cart.py",
        "analytics/test_events.py",
    ]
    ranks = [long_running_rank(TESTS_FOLDER / path) for path in paths]
    assert ranks == sorted(ranks)
    # A file named in the list is not mistaken for a folder's prefix, nor its folder for it.
    assert long_running_rank(TESTS_FOLDER / "services/test_cart.py") == len(LONG_RUNNING_FIRST)
    assert long_running_rank(TESTS_FOLDER / "cli_extra/test_x.py") == len(LONG_RUNNING_FIRST)
