"""The segments page in Chromium, under the real CSP: build an audience with the condition
builder, watch the live count follow each change (htmx), save it; and the contacts' CSV
upload form."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from tests.conftest import Api
from tests.dashboard.conftest import Tab

CSV = (
    "phone,name,tags,city,opted_out\n"
    "+15550007001,Ann,vip;news,Paris,\n"
    "+15550007002,Bob,vip,Berlin,\n"
    "+15550007003,Cid,news,Paris,\n"
    "+15550007004,Dan,,Rome,\n"
    "+15550007005,Eve,vip,Paris,yes\n"
)


async def test_build_a_segment_with_a_live_count_and_import_contacts(
    tab: Tab, api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme")
    imported = await client.post(
        f"/api/v1/workspaces/{ws}/contacts/import",
        files={"file": ("c.csv", CSV.encode(), "text/csv")},
        headers=owner.headers,
    )
    assert imported.status_code == 200, imported.text
    await tab.login(owner)
    page = tab.page
    await tab.open(f"/app/w/{ws}/contacts")
    await page.get_by_role("link", name="Segments").click()
    await expect(page.get_by_role("heading", name="Segments")).to_be_visible()
    await page.get_by_role("link", name="New segment").click()
    count = page.locator("#live-count strong")
    await expect(page.locator("#live-count")).to_contain_text("Condition 1: give at least one tag")
    await page.get_by_label("Name").fill("Paris VIPs")
    await page.get_by_label("Value").fill("vip")
    await expect(count).to_have_text("2")  # Ann, Bob (Eve opted out)

    await page.get_by_role("button", name="Add condition").click()
    second = page.get_by_label("Condition 2")
    await expect(second).to_be_visible()
    # htmx wires the swapped-in row's own requests when it settles: choose only after that.
    await expect(page.locator("#segment-builder .htmx-added, .htmx-settling")).to_have_count(0)
    await page.wait_for_timeout(100)
    await second.select_option("attribute")
    await expect(page.get_by_label("Attribute")).to_be_visible()
    await page.get_by_label("Attribute").fill("city")
    await page.locator("#c-1-value").fill("Paris")
    await expect(count).to_have_text("1")  # Ann
    await page.get_by_label("Contacts who match").select_option("any")
    await expect(count).to_have_text("3")  # Ann, Bob, Cid
    await tab.shot("segment-editor")

    async with page.expect_navigation():
        await page.get_by_role("button", name="Create segment").click()
    await expect(page.get_by_text("Segment created.")).to_be_visible()
    listed = await client.get(f"/api/v1/workspaces/{ws}/segments", headers=owner.headers)
    [segment] = listed.json()["data"]["items"]
    assert segment["name"] == "Paris VIPs"
    assert segment["definition"] == {
        "match": "any",
        "conditions": [
            {"type": "tags", "operator": "has_any", "values": ["vip"]},
            {"type": "attribute", "key": "city", "operator": "eq", "value": "Paris"},
        ],
    }
    await page.get_by_role("button", name="Remove").first.click()
    await expect(count).to_have_text("2")  # city is Paris: Ann, Cid
    await page.get_by_role("link", name="← Segments").click()
    await expect(page.get_by_role("cell", name="3", exact=True)).to_be_visible()  # saved count
    await tab.shot("segments-list")

    await tab.open(f"/app/w/{ws}/contacts")
    more = "phone,name,tags\n+15550007006,Fay,vip\n+15550007001,Ann,gold\n"
    await page.get_by_label("CSV file", exact=True).set_input_files(
        {"name": "more.csv", "mimeType": "text/csv", "buffer": more.encode()}
    )
    await page.get_by_label("Where they gave consent").select_option("web_form")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Import").click()
    await expect(page.locator(".alert-info")).to_contain_text("1 new, 1 updated")
    bad = "phone,name\nnot a phone,X\n"
    await tab.open(f"/app/w/{ws}/contacts")
    await page.get_by_label("CSV file", exact=True).set_input_files(
        {"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode()}
    )
    async with page.expect_navigation():
        await page.get_by_role("button", name="Import").click()
    await expect(page.get_by_role("cell", name="2", exact=True)).to_be_visible()
    await expect(page.get_by_text("nothing was imported").first).to_be_visible()
    await tab.shot("contacts-import-errors")
