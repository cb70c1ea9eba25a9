"""The templates page in Chromium, under the real CSP: sync brings in the templates made in
Meta's console with their status and quality badges; the create form's preview follows the
typing (htmx, no page load); a new template shows PENDING, then APPROVED after the sandbox's
review webhook; delete."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import expect

from botplatform.sandbox import FakeGraph
from tests.conftest import Api
from tests.dashboard.conftest import Tab
from tests.template.test_templates_api import TEMPLATE


@pytest.fixture
def reviewing(wa: FakeGraph) -> FakeGraph:
    wa.template_approval_delay = 0.5
    return wa


async def test_sync_create_with_live_preview_and_approval(
    tab: Tab, api: Api, reviewing: FakeGraph, client: httpx.AsyncClient
) -> None:
    wa = reviewing
    owner = await api.register()
    ws = await api.create_workspace(owner, "Acme Shop")
    channel = await api.create_channel(owner, ws, business_account_id=wa.waba_id)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    # Made in Meta's console: one approved with a good quality, one rejected.
    made = wa.templates.create(wa.waba_id, {**TEMPLATE, "name": "welcome_back"})
    made.update(status="APPROVED", quality_score={"score": "GREEN"})
    rejected = wa.templates.create(wa.waba_id, {**TEMPLATE, "name": "flash_sale"})
    rejected.update(status="REJECTED", rejected_reason="PROMOTIONAL")

    await tab.login(owner)
    page = tab.page
    await (
        page.get_by_role("navigation", name="Workspace")
        .get_by_role("link", name="Templates")
        .click()
    )
    await expect(page.get_by_role("heading", name="Message templates")).to_be_visible()
    await page.get_by_role("button", name="Sync Support").click()
    await expect(page.locator(".alert-info")).to_contain_text("Synced 2 template(s): 2 new")
    table = page.locator("#templates")
    await expect(table.get_by_role("row", name="welcome_back")).to_contain_text("approved")
    await expect(table.get_by_role("row", name="welcome_back")).to_contain_text("green")
    await expect(table.get_by_role("row", name="flash_sale")).to_contain_text("PROMOTIONAL")

    # The preview follows the typing, without a page load.
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    await page.get_by_label("Name", exact=True).fill("order_on_its_way")
    await page.get_by_label("Header (optional)").fill("Good news")
    await page.get_by_label("Body").fill("Hi {{1}}, your order {{2}} is on its way.")
    await page.get_by_label("Example values, one per line").fill("Ada\n#4521")
    await page.get_by_label("Quick reply buttons, one per line (optional)").fill("Thanks!")
    preview = page.locator("#tpl-preview")
    await expect(preview).to_contain_text("Hi Ada, your order #4521 is on its way.")
    await expect(preview).to_contain_text("Good news")
    await expect(preview).to_contain_text("Thanks!")
    assert navigations == []
    await tab.shot("templates-create-preview")

    await page.get_by_role("button", name="Submit for review").click()
    await page.wait_for_url("**/templates?notice=template_created")
    row = table.get_by_role("row", name="order_on_its_way")
    await expect(row).to_contain_text("pending")
    sent = [c for c in wa.received if c["method"] == "POST" and "message_templates" in c["path"]]
    assert sent[-1]["json"]["components"][1]["example"] == {"body_text": [["Ada", "#4521"]]}

    async def approved() -> bool:
        await page.reload()
        return "approved" in (await row.inner_text())

    for _ in range(40):
        if await approved():
            break
    await expect(row).to_contain_text("approved")
    await tab.shot("templates-list")

    await table.get_by_role("button", name="Delete flash_sale (en_US)").click()
    await page.wait_for_url("**/templates?notice=template_deleted")
    await expect(table).not_to_contain_text("flash_sale")
    assert [t["name"] for t in wa.templates.of(wa.waba_id)] == ["welcome_back", "order_on_its_way"]
