"""The Analytics page in Chromium, under the real CSP: the known history of the analytics
tests (Paris, business hours, the DST Sunday, a reopened conversation), shown for its range:
the totals, the stacked messages chart and the response-time chart (uPlot, from our static
folder) drawn from the page's numbers, the tables, the week view through the form, a CSV
download equal to the API's, the empty range, and the page at phone width."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from botplatform.runtime import Runtime
from tests.analytics.test_analytics import AFTER, _run, _seed
from tests.conftest import Api
from tests.dashboard.conftest import Tab

RANGE = "from=2026-10-19&to=2026-10-31"


async def test_analytics_page_shows_the_known_history(
    tab: Tab, api: Api, runtime: Runtime, client: httpx.AsyncClient
) -> None:
    history = await _seed(api, runtime)
    await _run(runtime, history.ws, AFTER)
    await tab.login(history.owner)
    page = tab.page
    await (
        page.get_by_role("navigation", name="Workspace")
        .get_by_role("link", name="Analytics")
        .click()
    )
    await expect(page.get_by_role("heading", name="Analytics", exact=True)).to_be_visible()
    # The default range (the last 30 days) holds nothing of this history: empty states.
    await expect(page.locator("#messages-chart")).to_have_text("No messages in this range.")
    await expect(page.get_by_text("No bot conversations in this range.")).to_be_visible()
    await tab.shot("analytics-empty")

    await tab.open(f"/app/w/{history.ws}/analytics?{RANGE}")
    await expect(page.locator("#t-in")).to_have_text("4")
    await expect(page.locator("#t-out")).to_have_text("3")
    await expect(page.locator("#t-opened")).to_have_text("4")
    chart = page.locator("#messages-chart")
    await expect(chart.locator("canvas")).to_be_visible()
    await expect(chart).to_have_attribute("data-total", "7")
    await expect(page.locator("#response-chart canvas")).to_be_visible()
    sunday = page.locator("#conversations").get_by_role("row", name="2026-10-25")
    await expect(sunday).to_contain_text("2")  # opened on the 25-hour day
    await expect(sunday).to_contain_text("60.0 min")  # answered an hour later
    friday = page.locator("#conversations").get_by_role("row", name="2026-10-23")
    await expect(friday).to_contain_text("66.5 h")  # Friday 16:00 → Monday 09:30
    await expect(friday).to_contain_text("1.5 h")  # of which business hours
    await expect(page.locator("#bots")).to_contain_text("50.0 %")
    await expect(page.locator("#leaderboard")).to_contain_text("Test User")
    await page.wait_for_timeout(200)
    await tab.shot("analytics-days")

    await page.get_by_label("Per", exact=True).select_option("week")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Show").click()
    await expect(page.locator("#conversations tbody tr")).to_have_count(2)
    await expect(page.locator("#conversations tbody tr").first).to_contain_text("2026-10-19")

    link = page.locator("#response-title + a")
    href = await link.get_attribute("href")
    assert href is not None and "granularity=week" in href
    downloaded = await page.request.get(f"{tab.base}{href}")
    assert downloaded.status == 200
    from_api = await client.get(
        f"/api/v1/workspaces/{history.ws}/analytics/conversations",
        params={"from": "2026-10-19", "to": "2026-10-31", "granularity": "week", "format": "csv"},
        headers=history.owner.headers,
    )
    assert (await downloaded.text()) == from_api.text

    await page.set_viewport_size({"width": 390, "height": 844})
    await tab.open(f"/app/w/{history.ws}/analytics?{RANGE}")
    await expect(page.locator("#messages-chart canvas")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    await tab.shot("analytics-phone")

    await tab.open(f"/app/w/{history.ws}/analytics?from=someday")
    await expect(page.get_by_text("'someday' is not a date (YYYY-MM-DD).")).to_be_visible()
    assert not tab.problems
