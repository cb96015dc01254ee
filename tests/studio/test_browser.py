"""The studio in a real browser: log in, follow related records, edit through the validation,
view as a user, the dashboard, the Health page, read-only, and the login and CSRF guards."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy.orm import Session

from afilo_db.analytics.reports import REPORTS
from afilo_db.data.catalog_import import import_catalog
from afilo_db.db.engine import create_app_engine
from afilo_db.services import catalog
from tests.studio.conftest import VIEWPORT, Studio, log_in, screenshot


def _query(studio: Studio, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(studio.owner_url) as connection:
        return connection.execute(sql, params).fetchall()


def _one(studio: Studio, sql: str, *params: Any) -> Any:
    rows = _query(studio, sql, *params)
    assert len(rows) == 1, rows
    return rows[0][0]


def test_without_logging_in_every_page_redirects_to_the_login(
    context: BrowserContext, studio: Studio
) -> None:
    page = context.new_page()
    product_id = _one(studio, "SELECT id FROM products ORDER BY created_at LIMIT 1")
    paths = [
        "/",
        "/products/list",
        f"/products/detail?pk={product_id}",
        f"/products/edit?pk={product_id}",
        "/products/create",
        "/user_profiles/list",
        "/view-as",
        "/events/list",
    ]
    for path in paths:
        page.goto(studio.url + path)
        assert page.url.startswith(f"{studio.url}/login"), path
    expect(page.locator("input[name=password]")).to_be_visible()
    screenshot(page, "01-login")
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.get_by_text("Wrong password or token")).to_be_visible()
    assert page.url.startswith(f"{studio.url}/login")


def test_a_product_leads_to_its_variants_and_their_tiers(page: Page, studio: Studio) -> None:
    handle, title, tiers = _query(
        studio,
        """SELECT p.handle, p.title, count(t.id) FROM products p
           JOIN product_variants v ON v.product_id = p.id
           JOIN product_pricing_tiers t ON t.variant_id = v.id
           GROUP BY p.id ORDER BY p.created_at LIMIT 1""",
    )[0]
    page.goto(f"{studio.url}/products/list")
    page.locator("tr", has_text=handle).locator("a[data-sa-name=view]").click()
    expect(page.locator("[data-studio=related][data-table=product_variants]")).to_be_visible()
    screenshot(page, "02-product-detail")
    variants = page.locator("[data-studio=related][data-table=product_variants] a.list-group-item")
    expected = _one(
        studio,
        "SELECT count(*) FROM product_variants v JOIN products p ON p.id = v.product_id WHERE p.handle = %s",
        handle,
    )
    assert variants.count() == expected
    page.locator("[data-studio=related][data-table=product_variants] .card-actions a").click()
    expect(page.locator("table tbody tr")).to_have_count(expected)
    page.go_back()
    tiered_variant = _one(
        studio,
        """SELECT v.title FROM product_variants v JOIN products p ON p.id = v.product_id
           WHERE p.handle = %s AND EXISTS (SELECT FROM product_pricing_tiers t
                                           WHERE t.variant_id = v.id)
           ORDER BY v.title LIMIT 1""",
        handle,
    )
    variants.filter(has_text=str(tiered_variant)).first.click()
    expect(page).to_have_url(re.compile(r"/product_variants/detail\?pk="))
    expect(page.locator("[data-studio=references]")).to_contain_text(title)
    tier_links = page.locator(
        "[data-studio=related][data-table=product_pricing_tiers] a.list-group-item"
    )
    # Wait for the page to render them: count() does not wait, and a busy machine is slow.
    expect(tier_links.first).to_be_visible()
    screenshot(page, "03-variant-detail")
    assert tiers >= tier_links.count()


def test_lists_filter_on_the_allowed_values(page: Page, studio: Studio) -> None:
    drafts = _one(studio, "SELECT count(*) FROM products WHERE status = 'draft'")
    teams = _one(studio, "SELECT count(*) FROM product_variants WHERE license_type = 'team'")
    assert drafts and teams
    page.goto(f"{studio.url}/products/list?filter=status__in%3Ddraft")
    expect(page.locator("table tbody tr")).to_have_count(drafts)
    page.goto(f"{studio.url}/product_variants/list?filter=license_type__in%3Dteam&page_size=100")
    expect(page.locator("table tbody tr")).to_have_count(teams)


def _first_personal_variant(studio: Studio) -> tuple[str, Decimal]:
    variant_id, price = _query(
        studio,
        "SELECT id, price FROM product_variants WHERE license_type = 'personal' ORDER BY created_at LIMIT 1",
    )[0]
    return str(variant_id), price


def _save(page: Page) -> None:
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_load_state("networkidle")


def test_a_valid_price_is_saved_and_logged_with_who_changed_it(page: Page, studio: Studio) -> None:
    variant_id, before = _first_personal_variant(studio)
    page.goto(f"{studio.url}/product_variants/edit?pk={variant_id}")
    new_price = before + Decimal("10.00")
    page.fill("input[name=price]", str(new_price))
    _save(page)
    expect(page).to_have_url(re.compile(r"/product_variants/list"))
    assert _one(studio, "SELECT price FROM product_variants WHERE id = %s", variant_id) == new_price
    actor, details = _query(
        studio,
        """SELECT actor, details FROM user_activity_log
           WHERE action = 'studio.update' AND entity_id = %s ORDER BY created_at DESC LIMIT 1""",
        variant_id,
    )[0]
    assert actor == "studio:operator"
    assert details == {"changes": {"price": {"from": str(before), "to": str(new_price)}}}


def test_a_negative_price_is_refused_next_to_the_field_and_nothing_is_written(
    page: Page, studio: Studio
) -> None:
    variant_id, before = _first_personal_variant(studio)
    logged = _one(studio, "SELECT count(*) FROM user_activity_log")
    page.goto(f"{studio.url}/product_variants/edit?pk={variant_id}")
    page.fill("input[name=price]", "-5")
    _save(page)
    error = page.locator("input[name=price] ~ .invalid-feedback, #price-error")
    expect(error.first).to_contain_text("must be a positive amount")
    screenshot(page, "04-negative-price-refused")
    assert _one(studio, "SELECT price FROM product_variants WHERE id = %s", variant_id) == before
    assert _one(studio, "SELECT count(*) FROM user_activity_log") == logged


def test_a_malformed_stripe_id_is_refused_by_the_same_rule_as_the_api(
    page: Page, studio: Studio
) -> None:
    product_id, stripe_id = _query(
        studio, "SELECT id, stripe_product_id FROM products ORDER BY created_at LIMIT 1"
    )[0]
    page.goto(f"{studio.url}/products/edit?pk={product_id}")
    page.fill("input[name=stripe_product_id]", "price_wrongkind123")
    _save(page)
    expect(page.locator("#stripe_product_id-error")).to_contain_text("must look like prod_")
    assert (
        _one(studio, "SELECT stripe_product_id FROM products WHERE id = %s", product_id)
        == stripe_id
    )


def test_a_delete_says_what_goes_with_the_record_and_is_logged(page: Page, studio: Studio) -> None:
    product_id, variants = _query(
        studio,
        """SELECT p.id, count(v.id) FROM products p JOIN product_variants v ON v.product_id = p.id
           WHERE NOT EXISTS (SELECT FROM purchases WHERE product_id = p.id)
             AND NOT EXISTS (SELECT FROM downloads WHERE product_id = p.id)
             AND NOT EXISTS (SELECT FROM purchases u JOIN product_variants w ON w.id = u.variant_id
                             WHERE w.product_id = p.id)
           GROUP BY p.id ORDER BY p.created_at DESC LIMIT 1""",
    )[0]
    page.goto(f"{studio.url}/products/detail?pk={product_id}")
    page.locator("a[data-sa-name=delete]").first.click()
    modal = page.locator("#modal-action")
    expect(modal).to_contain_text(f"{variants} product_variants")
    expect(modal).to_contain_text("Also deletes")
    expect(modal).to_have_class(re.compile(r"\bshow\b"))
    # Bootstrap fades the modal in; the picture should show it, not the fade.
    page.wait_for_timeout(400)
    screenshot(page, "05-delete-confirmation", full_page=False)
    modal.locator("#actionSubmit").click()
    page.wait_for_load_state("networkidle")
    expect(page).to_have_url(re.compile(r"/products/list"), timeout=60_000)
    assert _query(studio, "SELECT 1 FROM products WHERE id = %s", product_id) == []
    assert _query(studio, "SELECT 1 FROM product_variants WHERE product_id = %s", product_id) == []
    details = _one(
        studio,
        "SELECT details FROM user_activity_log WHERE action = 'studio.delete' AND entity_id = %s",
        str(product_id),
    )
    assert details["deleted_with_it"]["product_variants"] == variants


def test_view_as_a_user_shows_only_that_users_cart(page: Page, studio: Studio) -> None:
    carts = _query(
        studio,
        """SELECT u.clerk_user_id, array_agg(c.variant_id::text ORDER BY c.variant_id)
           FROM user_profiles u JOIN cart_items c ON c.user_id = u.id
           GROUP BY u.id ORDER BY u.created_at""",
    )
    assert len(carts) >= 2, "the demo data has several users with a cart"
    (clerk_user_id, own_variants), others = carts[0], carts[1:]
    page.goto(f"{studio.url}/view-as")
    page.select_option("select[name=user]", clerk_user_id)
    page.get_by_role("button", name="View as this user").click()
    banner = page.locator("[data-studio=viewing-as]")
    expect(banner).to_contain_text(clerk_user_id)
    expect(banner).to_contain_text("afilo_app")
    shown = sorted(
        page.locator("[data-studio=cart] tr[data-variant]").evaluate_all(
            "rows => rows.map(row => row.dataset.variant)"
        )
    )
    assert shown == sorted(own_variants)
    for _, their_variants in others:
        assert not set(their_variants) - set(own_variants) & set(shown)
    cart_table = page.locator("[data-studio=seen-table][data-table=cart_items]")
    assert cart_table.get_attribute("data-count") == str(len(own_variants))
    profiles = page.locator("[data-studio=seen-table][data-table=user_profiles]")
    assert profiles.get_attribute("data-count") == "1"
    screenshot(page, "06-view-as-user")


def test_the_dashboard_draws_its_charts_from_the_package_alone(page: Page, studio: Studio) -> None:
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith(studio.url.rsplit("/", 1)[0])
            or request.url.startswith("data:")
            else outside.append(request.url)
        ),
    )
    page.goto(f"{studio.url}/")
    page.wait_for_load_state("networkidle")
    for name in REPORTS:
        chart = page.locator(f"[data-chart={name}] svg")
        expect(chart).to_be_visible()
    # Drawn by matplotlib with the text kept as text: the downloads chart names the products.
    top = _one(studio, "SELECT p.title FROM downloads d JOIN products p ON p.id = d.product_id"
                       " GROUP BY p.title ORDER BY count(*) DESC, p.title LIMIT 1")  # fmt: skip
    expect(page.locator("[data-chart=downloads] svg")).to_contain_text(top[:31])
    products = _one(studio, "SELECT count(*) FROM products")
    expect(page.locator("[data-studio=counts] tr[data-table=products]")).to_contain_text(
        f"{products:,}"
    )
    expect(page.locator("[data-studio=answered-by]")).to_contain_text("answered by the primary")
    expect(page.locator("[data-studio=activity] tbody tr").first).to_be_visible()
    screenshot(page, "07-dashboard")
    assert outside == []


def test_the_dashboard_shows_the_reports_over_the_chosen_range(page: Page, studio: Studio) -> None:
    page.goto(f"{studio.url}/")
    page.fill("input[name=from]", "2026-02-01")
    page.fill("input[name=to]", "2026-02-28")
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state("networkidle")
    assert "from=2026-02-01" in page.url
    months = page.locator("[data-figures=revenue] tbody tr td:first-child").all_text_contents()
    assert months == ["2026-02"]
    one_off = _one(studio, "SELECT sum(amount) FROM purchases WHERE status IN ('paid', 'refunded')"
                           " AND created_at >= '2026-02-01' AND created_at < '2026-03-01'")  # fmt: skip
    cells = page.locator("[data-figures=revenue] tbody tr td").all_text_contents()
    assert cells[2] == f"{one_off:,.2f}"
    # A range that ends before it starts is refused next to its field; the default range shows.
    page.goto(f"{studio.url}/?from=2026-03-01&to=2026-02-01")
    expect(page.locator("[data-studio=date-range] .invalid-feedback")).to_contain_text(
        "must not be after"
    )
    page.goto(f"{studio.url}/?from=yesterday")
    expect(page.locator("[data-studio=date-range] .invalid-feedback")).to_contain_text("a date")


def test_read_only_hides_every_write(browser: Browser, read_only_studio: Studio) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    log_in(page, read_only_studio)
    expect(page.locator("[data-studio=read-only]")).to_be_visible()
    page.goto(f"{read_only_studio.url}/products/list")
    page.wait_for_load_state("networkidle")
    assert page.locator("a[data-sa-name=delete], a[data-sa-name=edit]").count() == 0
    assert page.get_by_role("link", name=re.compile("New")).count() == 0
    product_id = _one(read_only_studio, "SELECT id FROM products ORDER BY created_at LIMIT 1")
    response = page.goto(f"{read_only_studio.url}/products/edit?pk={product_id}")
    assert response is not None and response.status == 403
    screenshot(page, "08-read-only")
    context.close()


def test_a_form_posted_without_its_csrf_token_is_refused(page: Page, studio: Studio) -> None:
    variant_id, before = _first_personal_variant(studio)
    response = page.request.post(
        f"{studio.url}/product_variants/edit?pk={variant_id}",
        multipart={"title": "Forged", "price": "1.00"},
    )
    assert response.status == 403
    assert (
        _query(studio, "SELECT price, title FROM product_variants WHERE id = %s", variant_id)[0][0]
        == before
    )


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
            screenshot(page, "09-health")
        finally:
            owner.execute("ALTER TABLE purchases FORCE ROW LEVEL SECURITY")
    page.reload()
    expect(page.locator(ROW_SECURITY_BAD)).to_have_count(0)


def _product_without_stripe_ids(handle: str) -> dict[str, Any]:
    return {
        "handle": handle,
        "title": f"{handle} kit",
        "status": "active",
        "variants": [
            {"sku": f"{handle.upper()}-P", "title": "Personal", "license_type": "personal",
             "price": "25.00"}
        ],
    }  # fmt: skip


@pytest.mark.parametrize("made_by", ["catalog import", "the Python API"])
def test_rows_without_stripe_ids_are_edited_and_saved(
    page: Page, studio: Studio, tmp_path: Path, made_by: str
) -> None:
    handle = "no-stripe-import" if made_by == "catalog import" else "no-stripe-api"
    if made_by == "catalog import":
        path = tmp_path / "catalog.jsonl"
        path.write_text(json.dumps(_product_without_stripe_ids(handle)) + "\n")
        with psycopg.connect(studio.owner_url) as connection:
            import_catalog(connection, path, workers=0)
            connection.commit()
    else:
        engine = create_app_engine(studio.owner_url)
        try:
            with Session(engine) as session:
                catalog.create_product(session, _product_without_stripe_ids(handle))
                session.commit()
        finally:
            engine.dispose()
    product_id, variant_id = _query(
        studio,
        """SELECT p.id, v.id FROM products p JOIN product_variants v ON v.product_id = p.id
           WHERE p.handle = %s AND p.stripe_product_id IS NULL AND v.stripe_price_id IS NULL""",
        handle,
    )[0]

    page.goto(f"{studio.url}/products/edit?pk={product_id}")
    expect(page.locator("input[name=stripe_product_id]")).to_have_value("")
    page.fill("input[name=title]", f"{handle} kit, edited")
    _save(page)
    expect(page).to_have_url(re.compile(r"/products/list"))
    assert _query(
        studio, "SELECT title, stripe_product_id FROM products WHERE id = %s", product_id
    ) == [(f"{handle} kit, edited", None)]

    page.goto(f"{studio.url}/product_variants/edit?pk={variant_id}")
    expect(page.locator("input[name=stripe_price_id]")).to_have_value("")
    page.fill("input[name=price]", "30.00")
    _save(page)
    expect(page).to_have_url(re.compile(r"/product_variants/list"))
    assert _query(
        studio, "SELECT price, stripe_price_id FROM product_variants WHERE id = %s", variant_id
    ) == [(Decimal("30.00"), None)]
