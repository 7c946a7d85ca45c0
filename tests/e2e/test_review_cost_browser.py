"""The lead dashboard's cost panel in real headless Chromium (Debian's ``chromium``, playwright).

A lead logs in, opens the dashboard and walks the three window tabs (by mouse and by arrow
keys): each shows the pure-frontier ratio, one row per mode with its chart, and the price line.
Below it, the audit panel shows the last 7 days' false-negative estimate.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.async_api import Browser, Page, expect

from tests.fixtures.browser import browser
from tests.fixtures.ledger import seed_ledger
from tests.fixtures.review import PASSWORD, ReviewEnv, new_prefix, review_env

WINDOWS = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days"}
MODES = ["classifier", "frontier", "batch", "streaming", "human"]

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
__all__ = ["browser", "review_env"]


async def _check_window(page: Page, window: str) -> None:
    tab = page.locator(f"#cost-tab-{window}")
    panel = page.locator(f"#cost-{window}")
    await expect(tab).to_have_attribute("aria-selected", "true")
    await expect(panel).to_be_visible()
    for other in set(WINDOWS) - {window}:
        await expect(page.locator(f"#cost-{other}")).to_be_hidden()
    await expect(panel.locator('[data-field="ratio"]')).to_have_text(re.compile(r"^[\d,]+\.\dx$"))
    await expect(panel.locator("table.cost-modes tbody tr")).to_have_count(len(MODES))
    for mode in MODES:
        row = panel.locator(f'tr[data-mode="{mode}"]')
        await expect(row.locator("td").nth(1)).to_have_text(re.compile(r"^\$[\d,.]+$|^n/a$"))
        chart = row.locator("svg.spark")
        await expect(chart).to_have_attribute("role", "img")
        await expect(chart).to_have_attribute("aria-label", re.compile(WINDOWS[window].lower()))
        assert await chart.locator("rect").count() >= 1
    frontier = panel.locator('tr[data-mode="frontier"] svg.spark rect')
    heights = [float(await r.get_attribute("height") or 0) for r in await frontier.all()]
    assert max(heights) > 0, "the seeded frontier cost draws a bar"
    await expect(panel.locator('[data-field="cache"]')).to_have_text(re.compile(r"%$"))
    await expect(panel.locator(".prices")).to_contain_text("as of")


async def test_a_lead_sees_the_cost_panel_for_each_window(
    review_env: ReviewEnv, browser: Browser
) -> None:
    await seed_ledger(review_env.store, new_prefix(), posts=30, borderline=3)
    await seed_ledger(review_env.store, new_prefix(), posts=10, borderline=2, age=timedelta(days=4))
    context = await browser.new_context(base_url=review_env.base_url)
    page = await context.new_page()
    errors: list[str] = []
    # Script exceptions and CSP violations; a missing favicon (404) is no concern here.
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "404" not in m.text else None,
    )
    try:
        await page.goto("/lead")
        await expect(page).to_have_url(re.compile(r"/login\?next="))
        await page.fill('input[name="username"]', review_env.lead)
        await page.fill('input[name="password"]', PASSWORD)
        await page.click('button[type="submit"]')
        await expect(page).to_have_url(f"{review_env.base_url}/lead")
        await expect(page.locator("#cost-title")).to_have_text("Cost")
        await expect(page.locator('[role="tab"]')).to_have_count(3)

        await _check_window(page, "today")
        await page.click("#cost-tab-7d")
        await _check_window(page, "7d")
        await expect(page).to_have_url(re.compile(r"/lead\?cost=7d#cost$"))
        await page.keyboard.press("ArrowRight")
        await _check_window(page, "30d")
        await expect(page.locator("#cost-tab-30d")).to_be_focused()
        await page.keyboard.press("ArrowRight")
        await _check_window(page, "today")

        await page.goto("/lead?cost=30d")  # the tab links work without script too
        await _check_window(page, "30d")

        # The audit panel below it: the window's row, whatever the shared database holds.
        await expect(page.locator("#audit-title")).to_have_text("Audit of allowed posts")
        overall = page.locator('#audit tr[data-audit-row="last 7 days"]')
        await expect(overall.locator('[data-field="fn_rate"]')).to_have_text(
            re.compile(r"^n/a$|^[\d.]+% \([\d.]+% to [\d.]+%\)$")
        )
    finally:
        await context.close()
    assert errors == [], "no script or CSP errors"
