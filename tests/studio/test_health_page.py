"""The studio's Health page in a real browser: the verdicts of `inspect check`, a bad one shown
as bad and gone after the fix, and nothing on the page that writes."""

from __future__ import annotations

import psycopg
from playwright.sync_api import Page, expect

from tests.studio.conftest import Studio, screenshot

ROW_SECURITY_BAD = "[data-studio=finding][data-check=row-security][data-status=bad]"


def test_the_health_page_shows_a_bad_verdict_until_it_is_fixed(page: Page, studio: Studio) -> None:
    page.goto(f"{studio.url}/health")
    findings = page.locator("[data-studio=finding]")
    expect(findings.first).to_be_visible()
    checks = set(findings.evaluate_all("rows => rows.map(row => row.dataset.check)"))
    assert {"bloat", "blocking", "long-transaction", "declared-index", "row-security",
            "roles", "replica-lag"} <= checks  # fmt: skip
    expect(page.locator(ROW_SECURITY_BAD)).to_have_count(0)

    with psycopg.connect(studio.owner_url, autocommit=True) as owner:
        owner.execute("ALTER TABLE purchases NO FORCE ROW LEVEL SECURITY")
        try:
            page.reload()
            bad = page.locator(ROW_SECURITY_BAD)
            expect(bad).to_have_count(1)
            expect(bad).to_have_attribute("data-subject", "purchases")
            expect(bad).to_contain_text("FORCE ROW LEVEL SECURITY")
            summary = page.locator("[data-studio=health-summary]")
            expect(summary).to_have_attribute("data-healthy", "no")
            screenshot(page, "health-bad-verdict")
        finally:
            owner.execute("ALTER TABLE purchases FORCE ROW LEVEL SECURITY")
    page.reload()
    expect(page.locator(ROW_SECURITY_BAD)).to_have_count(0)
