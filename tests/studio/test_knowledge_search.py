"""The knowledge base's search box in the studio: the chat bot's hybrid search, in the browser."""

from __future__ import annotations

from urllib.parse import quote

from playwright.sync_api import Page, expect

from tests.studio.conftest import Studio, screenshot


def test_the_knowledge_base_page_searches_like_the_chat_bot(page: Page, studio: Studio) -> None:
    page.goto(f"{studio.url}/knowledge_base/list")
    box = page.locator("[data-studio=knowledge-search-box]")
    box.locator("input[name=q]").fill("How do I get my money back?")
    box.locator("button[type=submit]").click()

    expect(page).to_have_url(f"{studio.url}/knowledge-search?q=How+do+I+get+my+money+back%3F")
    passages = page.locator("[data-studio=passage]")
    expect(passages.first).to_have_attribute("data-source", "sample:policy/refunds.md")
    expect(passages.first).to_contain_text("vector rank")
    screenshot(page, "20-knowledge-search")

    # Filtered by type: every passage shown is a licence passage.
    form = page.locator("[data-studio=knowledge-search]")
    form.locator("input[name=q]").fill("Can I sell the files inside my own product?")
    form.locator("select[name=type]").select_option("licence")
    form.locator("button[type=submit]").click()
    expect(passages.first).to_be_visible()
    for source in passages.evaluate_all("(nodes) => nodes.map((n) => n.dataset.source)"):
        assert source.startswith("sample:licence/")

    # A passage leads to its record.
    passages.first.locator("a").click()
    expect(page).to_have_url(f"{studio.url}/knowledge_base/detail?pk=" + page.url.split("pk=")[1])
    expect(page.locator("body")).to_contain_text("sample:licence/")


def test_bad_searches_say_what_is_wrong(page: Page, studio: Studio) -> None:
    page.goto(f"{studio.url}/knowledge-search?q={quote('refund')}&type=gossip")
    expect(page.locator("[data-studio=search-problem]")).to_contain_text("type: must be one of")
    expect(page.locator("[data-studio=search-results]")).to_have_count(0)
