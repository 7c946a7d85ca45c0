"""The review UI in real headless Chromium (Debian's ``chromium``, driven by playwright).

Log in, claim with the keyboard, reveal blurred content, stream an analysis, decide, and see the
item leave the queue and the human decision arrive on the decisions topic.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from schemas import DecisionEvent, Stage, Verdict, decode
from tests.fixtures.browser import browser
from tests.fixtures.review import (
    PASSWORD,
    ReviewEnv,
    new_prefix,
    review_env,
    seed_items,
)
from tests.fixtures.services import read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
__all__ = ["browser", "review_env"]


async def test_reviewer_logs_in_claims_decides_and_the_item_leaves(
    review_env: ReviewEnv, browser: Browser
) -> None:
    prefix = new_prefix()
    [item] = await seed_items(review_env.store, prefix, 1, severity=0.9)
    context = await browser.new_context(base_url=review_env.base_url)
    page = await context.new_page()
    try:
        await page.goto(f"/?post={prefix}")
        await expect(page).to_have_url(re.compile(r"/login\?next="))
        await page.fill('input[name="username"]', review_env.reviewer)
        await page.fill('input[name="password"]', PASSWORD)
        await page.click('button[type="submit"]')
        row = page.locator(f'tr[data-item="{item.item_id}"]')
        await expect(row).to_contain_text("pending")

        await page.keyboard.press("?")
        await expect(page.locator("#help")).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(page.locator("#help")).to_be_hidden()

        await page.keyboard.press("n")  # claim the next item of this (filtered) view
        await expect(page).to_have_url(f"{review_env.base_url}/items/{item.item_id}")
        text = page.locator("#post-text")
        await expect(text).to_have_class("post-text blurred")
        await text.click()
        await expect(text).to_have_class("post-text")
        await expect(page.locator("#item-state")).to_have_text("claimed")

        await page.click("#analyze")
        await expect(page.locator("#ttft")).to_contain_text("first token after")
        await expect(page.locator("#analysis-text")).to_contain_text("Suggested verdict")
        await expect(page.locator("#analysis-text")).to_have_attribute("data-done", "true")

        await page.check('input[name="category"][value="spam"]')
        await page.keyboard.press("r")
        await expect(page).to_have_url(f"{review_env.base_url}/?decided={item.item_id}")
        await expect(page.locator("#status")).to_contain_text("Decision recorded")
        await expect(page.locator(f'tr[data-item="{item.item_id}"]')).to_have_count(0)

        await page.goto(f"/?post={prefix}&state=decided")
        await expect(page.locator(f'tr[data-item="{item.item_id}"]')).to_contain_text(
            f"remove by {review_env.reviewer}"
        )
    finally:
        await context.close()

    records = await read_topic(review_env.settings, review_env.settings.topic_decisions, idle_s=1)
    decisions = [decode(DecisionEvent, r.value) for r in records]
    [decision] = [d for d in decisions if d.post_id == item.post_id]
    assert decision.stage is Stage.HUMAN and decision.verdict is Verdict.REMOVE
    assert set(decision.categories) == {"spam", "toxicity"}


async def test_log_out_my_other_sessions_button(review_env: ReviewEnv, browser: Browser) -> None:
    name = await review_env.user()
    here = await browser.new_context(base_url=review_env.base_url)
    there = await browser.new_context(base_url=review_env.base_url)
    try:
        pages = []
        for context in (here, there):
            page = await context.new_page()
            await page.goto("/login")
            await page.fill('input[name="username"]', name)
            await page.fill('input[name="password"]', PASSWORD)
            await page.click('button[type="submit"]')
            await expect(page.locator("header .who")).to_contain_text(name)
            pages.append(page)
        mine, other = pages
        await mine.click("#logout-others")
        await expect(mine.locator("#status")).to_contain_text("Logged out 1 other session.")
        await other.reload()
        await expect(other).to_have_url(re.compile(r"/login\?next="))
        await mine.reload()
        await expect(mine.locator("header .who")).to_contain_text(name)
    finally:
        await here.close()
        await there.close()
