"""The settings page and a branded login page in Chromium, under the real CSP: the logo
preview (our own script, a data: URL), the upload, the keyboard, and a workspace's colours and
logo on the login page of its own host name (`*.localhost` reaches loopback in Chromium)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from playwright.async_api import expect

from tests.branding.test_branding import png
from tests.conftest import Api
from tests.dashboard.conftest import Tab

DOMAIN = "acme.localhost"


async def test_logo_preview_upload_and_branded_login_in_the_browser(
    tab: Tab, api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Acme")
    await tab.login(owner)
    await tab.open(f"/app/w/{ws}/settings")
    page = tab.page
    await expect(page.get_by_role("heading", name="Branding")).to_be_visible()

    picker = page.get_by_label("Logo image (PNG, JPEG or WebP, at most 512 KiB)")
    await picker.set_input_files({"name": "logo.png", "mimeType": "image/png", "buffer": png(8)})
    preview = page.locator("#logo-preview")
    await expect(preview).to_be_visible()
    assert (await preview.get_attribute("src") or "").startswith("data:image/png;base64,")
    await page.get_by_role("button", name="Upload logo").click()
    await page.wait_for_url("**/settings?notice=saved")
    current = page.locator("#logo-current")
    await expect(current).to_be_visible()
    assert await current.evaluate("img => img.complete && img.naturalWidth") == 8

    # Keyboard only: the retention field, the archive toggle and the save button.
    await page.get_by_label("Keep messages for (days)").focus()
    await page.keyboard.type("90")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Space")
    await page.keyboard.press("Tab")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    retention = await client.get(f"/api/v1/workspaces/{ws}/retention", headers=owner.headers)
    assert retention.json()["data"]["retention_days"] == 90
    assert retention.json()["data"]["archive_before_delete"] is True

    saved = await client.put(
        f"/api/v1/workspaces/{ws}/branding",
        json={
            "name": "Acme Help",
            "background_color": "#102030",
            "custom_domain": "acme.localhost",
        },
        headers=owner.headers,
    )
    assert saved.status_code == 200
    port = urlsplit(tab.base).port
    await page.context.clear_cookies()
    await page.goto(f"http://{DOMAIN}:{port}/app/login")
    await expect(page.locator(".auth-card .brand")).to_have_text("Acme Help")
    await expect(page.get_by_role("img", name="Acme Help")).to_be_visible()
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(16, 32, 48)"
