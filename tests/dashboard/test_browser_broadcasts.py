"""The broadcast composer and page in Chromium, under the real CSP: compose a broadcast to a
saved segment with an approved template (variables mapped to contact attributes, the preview
and the segment's count following the choices through htmx), start it against the WhatsApp
sandbox, watch the progress reach completed without reloading, and the sends-per-second chart
(uPlot, from our static folder) drawn from the recipients' send times."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from botplatform.sandbox import FakeGraph
from tests.conftest import Api
from tests.dashboard.conftest import Tab
from tests.template.test_templates_api import TEMPLATE

VIPS = 30
CSV = (
    "phone,name,tags,order\n"
    + "".join(f"+1555720{index:04d},Client{index},vip,#{index}\n" for index in range(VIPS))
    + "+15557299999,Other,,#x\n"
)
VIP = {"match": "all", "conditions": [{"type": "tags", "operator": "has_any", "values": ["vip"]}]}


async def test_compose_a_segment_broadcast_start_it_and_watch_it_complete(
    tab: Tab, api: Api, wa: FakeGraph, client: httpx.AsyncClient
) -> None:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Shop")
    # A slow channel (10 msg/s): the broadcast takes a few seconds, the chart has a shape.
    channel = await api.create_channel(
        owner, ws, business_account_id=wa.waba_id, send_rate_per_second=10
    )
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    wa.templates.create(wa.waba_id, TEMPLATE).update(status="APPROVED")
    headers = owner.headers
    base = f"/api/v1/workspaces/{ws}"
    synced = await client.post(f"{base}/channels/{channel['id']}/templates/sync", headers=headers)
    assert synced.status_code == 200, synced.text
    imported = await client.post(
        f"{base}/contacts/import",
        files={"file": ("c.csv", CSV.encode(), "text/csv")},
        headers=headers,
    )
    assert imported.status_code == 200, imported.text
    made = await client.post(
        f"{base}/segments", json={"name": "VIPs", "definition": VIP}, headers=headers
    )
    assert made.status_code == 201, made.text

    await tab.login(owner)
    page = tab.page
    await (
        page.get_by_role("navigation", name="Workspace")
        .get_by_role("link", name="Broadcasts")
        .click()
    )
    await expect(page.get_by_role("heading", name="Broadcasts")).to_be_visible()
    await page.get_by_role("link", name="New broadcast").click()
    await expect(page.get_by_role("heading", name="New broadcast")).to_be_visible()
    await expect(page.locator("#segment-count strong")).to_have_text(str(VIPS))
    await page.get_by_label("Name").fill("Shipping news")
    await expect(page.get_by_label("Template (approved)")).to_contain_text("order_shipped")
    await page.get_by_label("Attribute for Body {{1}}").select_option("name")
    await page.get_by_label("Default for Body {{1}}").fill("friend")
    await page.get_by_label("Attribute for Body {{2}}").select_option("order")
    preview = page.locator("#tpl-preview")
    await expect(preview).to_contain_text("Hi friend, your order [order] has shipped.")
    await expect(preview).to_contain_text("Your order")  # the template's header
    await tab.shot("broadcast-composer")

    async with page.expect_navigation():
        await page.get_by_role("button", name="Create and start").click()
    await expect(page.get_by_text("Broadcast started.")).to_be_visible()
    status = page.locator("#broadcast-status")
    # Polled every 2 s: the page follows the broadcast without a reload.
    await expect(status).to_have_text("completed", timeout=30_000)
    await expect(page.locator("[data-count-total]")).to_have_text(str(VIPS))
    chart = page.locator("#send-chart")
    await expect(chart.locator("canvas")).to_be_visible()
    await expect(chart).to_have_attribute("data-total", str(VIPS), timeout=10_000)
    assert int(await chart.get_attribute("data-points") or 0) >= 2  # several seconds
    await expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    await page.reload()  # the recipients' list is the page's (not polled)
    await expect(page.locator("#recipients tbody tr")).to_have_count(VIPS)
    await expect(page.locator("#send-chart canvas")).to_be_visible()
    await page.wait_for_timeout(300)
    await tab.shot("broadcast-completed")

    sent = [item for item in wa.sent if item["type"] == "template"]
    assert len(sent) == VIPS and len({item["to"] for item in sent}) == VIPS
    first = next(item for item in sent if item["to"] == "15557200000")
    values = [p["text"] for p in first["body"]["template"]["components"][0]["parameters"]]
    assert values == ["Client0", "#0"]

    await page.get_by_role("link", name="← Broadcasts").click()
    row = page.locator("#broadcasts").get_by_role("row", name="Shipping news")
    await expect(row).to_contain_text("completed")
    await tab.shot("broadcasts-list")

    # Scheduled for later (workspace time), then paused, resumed and cancelled with the buttons.
    await page.get_by_role("link", name="New broadcast").click()
    await page.get_by_label("Name").fill("Next week")
    await page.get_by_label("Start", exact=True).select_option("later")
    await page.get_by_label("Date and time (UTC)").fill("2099-01-01T09:00")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Create and start").click()
    await expect(page.get_by_text("Broadcast scheduled.")).to_be_visible()
    await expect(status).to_have_text("scheduled")
    await expect(page.get_by_text("scheduled 2099-01-01 09:00 (UTC)")).to_be_visible()
    await expect(page.locator("#send-chart")).to_have_text("No sends yet.")
    await page.get_by_role("button", name="Pause").click()
    await expect(status).to_have_text("paused")
    await page.get_by_role("button", name="Resume").click()
    await expect(status).to_have_text("scheduled")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Cancel broadcast").click()
    await expect(status).to_have_text("cancelled")
    await tab.shot("broadcast-cancelled")
