"""The first hour in the dashboard: 'Connect the sandbox' makes a working channel in one
click, the inbox and contacts show each customer's number, a channel that never received a
webhook says so, and a second workspace is created and switched to from every page (the admin
pages included) — over HTTP, and in a real browser with screenshots."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from playwright.async_api import Route, expect

from botplatform.dashboard import inbox
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import Account, Api, eventually, make_superadmin
from tests.dashboard.conftest import Tab
from tests.dashboard.helpers import browser_login, post_form, unlabelled_controls


async def _connect_sandbox(client: httpx.AsyncClient, ws: str) -> str:
    """Clicks 'Connect the sandbox' on the channels page; answers the new channel's page."""
    made = await post_form(client, f"/app/w/{ws}/channels", f"/app/w/{ws}/channels/sandbox", {})
    assert made.status_code == 303, made.text
    assert "notice=channel_created" in made.headers["location"]
    return made.headers["location"].split("?", 1)[0]


async def test_connect_the_sandbox_in_one_click_then_two_customers_apart(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    listing = await client.get(f"/app/w/{ws}/channels")
    assert "Connect the sandbox" in listing.text

    channel_page = await _connect_sandbox(client, ws)
    detail = await client.get(channel_page)
    assert (
        'botplatform sandbox message "hello" --from 15551234567 --name Ada'
        f" --sandbox-url {runtime.settings.whatsapp_api_base_url}</code>"
    ) in detail.text  # the sandbox is not on its default port in the tests
    assert "Connect the sandbox again" in detail.text
    assert "no webhook received yet" in detail.text
    channel_id = channel_page.rsplit("/", 1)[1]
    [number] = wa.numbers.values()
    assert number.webhook_url and number.webhook_url.endswith(f"/webhooks/whatsapp/{channel_id}")

    await wa.post_inbound_text("15551234567", "Where is my order?", "Ada")
    await wa.post_inbound_text("15559876543", "Hello?")

    async def both_listed() -> str | None:
        inbox = (await client.get(f"/app/w/{ws}/inbox")).text
        return inbox if "Customer 6543" in inbox and "Ada" in inbox else None

    inbox = await eventually(both_listed)
    assert "+15551234567" in inbox and "+15559876543" in inbox
    contacts = (await client.get(f"/app/w/{ws}/contacts")).text
    assert "+15551234567" in contacts and "+15559876543" in contacts
    assert unlabelled_controls(contacts) == []
    channels = (await client.get(f"/app/w/{ws}/channels")).text
    assert ">healthy<" in channels and "sandbox" in channels  # a webhook has arrived now

    # A restarted sandbox forgets the channel; one click tells it again.
    wa.numbers.clear()
    again = await post_form(client, channel_page, f"{channel_page}/sandbox", {})
    assert again.status_code == 303 and "sandbox_connected" in again.headers["location"]
    assert list(wa.numbers) == [number.phone_number_id]


async def test_channels_page_explains_the_sandbox_when_it_is_not_configured(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    monkeypatch.setattr(runtime.settings, "whatsapp_api_base_url", "https://graph.facebook.com")
    page = (await client.get(f"/app/w/{ws}/channels")).text
    assert "Connect the sandbox</button>" not in page
    assert "WHATSAPP_API_BASE_URL=http://127.0.0.1:3100" in page
    refused = await post_form(client, f"/app/w/{ws}/channels", f"/app/w/{ws}/channels/sandbox", {})
    assert refused.status_code == 409 and "botplatform sandbox whatsapp" in refused.text


async def test_a_second_workspace_from_the_switcher_on_every_page(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "First Shop")
    await make_superadmin(runtime, owner)
    await browser_login(client, owner.email, owner.password)
    for path in (f"/app/w/{ws}/inbox", f"/app/w/{ws}/settings", "/app/account", "/admin/plans"):
        page = (await client.get(path)).text
        assert '<option value="new">+ New workspace…</option>' in page, path
        assert "First Shop (owner)" in page, path
    admin = (await client.get("/admin/workspaces")).text
    assert '<option value="" selected>Choose a workspace…</option>' in admin

    chosen = await client.get("/app/switch?ws=new")
    assert chosen.status_code == 303 and chosen.headers["location"] == "/app/workspaces#new-ws"
    made = await post_form(client, "/app/workspaces", "/app/workspaces", {"name": "Second Shop"})
    assert made.status_code == 303
    second = made.headers["location"].rsplit("/", 1)[1]
    page = (await client.get(f"/app/w/{second}", follow_redirects=True)).text
    assert f'<option value="{second}" selected>Second Shop (owner)</option>' in page
    back = await client.get(f"/app/switch?ws={ws}")
    assert back.headers["location"] == f"/app/w/{ws}"


async def test_first_hour_in_a_browser(tab: Tab, api: Api, wa: FakeGraph, runtime: Runtime) -> None:
    owner: Account = await api.register(name="Nina Newcomer")
    ws = await api.create_workspace(owner, "My First Shop")
    await make_superadmin(runtime, owner)
    await tab.login(owner)
    page = tab.page

    # Channels: a fresh workspace, one click on "Connect the sandbox".
    await tab.open(f"/app/w/{ws}/channels")
    await page.get_by_role("button", name="Connect the sandbox").click()
    await expect(page.get_by_role("heading", name="Sandbox", exact=True)).to_be_visible()
    await expect(page.locator("#sandbox-say")).to_contain_text("botplatform sandbox message")
    await tab.shot("first-hour-sandbox-channel")

    # Two customers write; the inbox tells them apart by number.
    await wa.post_inbound_text("15551234567", "Hi, where is my order?", "Ada")
    await wa.post_inbound_text("15559876543", "Do you ship to Canada?")
    await tab.open(f"/app/w/{ws}/inbox")
    conversations = page.locator("#conv-list")
    await expect(conversations).to_contain_text("+15551234567")
    await expect(conversations).to_contain_text("Customer 6543")
    await expect(conversations).to_contain_text("+15559876543")
    await page.locator("#conv-list a", has_text="Ada").click()
    await expect(page.locator("#thread .thread-head")).to_contain_text("+15551234567")
    await page.get_by_label("Reply to Ada").fill("It ships today!")

    # A slow thread refresh (a busy host) is still in flight when the next status arrives.
    async def slow(route: Route) -> None:
        answer = await route.fetch()  # rendered now, arrives late
        await asyncio.sleep(0.4)
        await route.fulfill(response=answer)

    await page.route(re.compile(r".*/thread\?.*"), slow)
    wa.status_delay = 0.15
    try:
        await page.get_by_role("button", name="Send").click()
        await expect(page.locator(".bubble.outbound .tick").last).to_have_attribute(
            "aria-label", "Read", timeout=inbox.FALLBACK_POLL_SECONDS * 1000 / 3
        )
    finally:
        wa.status_delay = 0.01
    reached = await eventually(lambda: wa.sent or None)
    assert reached[0]["to"] == "15551234567"
    # sent, delivered and read follow each other within milliseconds: the tick shows the
    # last of them live, not whichever refresh happened to finish last (well before the
    # fallback poll).
    await expect(page.locator(".bubble.outbound .tick").last).to_have_attribute(
        "aria-label", "Read", timeout=inbox.FALLBACK_POLL_SECONDS * 1000 / 3
    )
    await tab.shot("first-hour-inbox")

    await tab.open(f"/app/w/{ws}/contacts")
    await expect(page.locator("table")).to_contain_text("+15559876543")
    await tab.shot("first-hour-contacts")
    await tab.open(f"/app/w/{ws}/channels")
    await expect(page.locator("table")).to_contain_text("healthy")
    await tab.shot("first-hour-channels")

    # From an admin page, the switcher makes a second workspace and goes back to the first.
    await tab.open("/admin/workspaces")
    switcher = page.get_by_role("combobox", name="Workspace")
    await expect(switcher).to_have_value("")
    await tab.shot("first-hour-admin-switcher")
    await switcher.select_option("new")
    await expect(page).to_have_url(f"{tab.base}/app/workspaces#new-ws")
    await page.get_by_label("Name").fill("Second Shop")
    await page.get_by_role("button", name="Create workspace").click()
    await expect(page.get_by_role("combobox", name="Workspace")).to_contain_text(
        "Second Shop (owner)"
    )
    await expect(page.locator("#ws-switch option:checked")).to_have_text("Second Shop (owner)")
    await tab.shot("first-hour-second-workspace")
    await page.get_by_role("combobox", name="Workspace").select_option(
        label="My First Shop (owner)"
    )
    await expect(page).to_have_url(f"{tab.base}/app/w/{ws}/inbox")


async def test_the_channel_page_corrects_a_mistyped_phone_number_id(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws, phone_number_id="1122334455668")
    await browser_login(client, owner.email, owner.password)
    page = f"/app/w/{ws}/channels/{channel['id']}"
    assert (
        'name="phone_number_id" type="text" value="1122334455668"' in (await client.get(page)).text
    )
    saved = await post_form(
        client,
        page,
        page,
        {
            "name": "Support",
            "status": "active",
            "auto_reply": "",
            "phone_number_id": "1122334455667",
        },
    )
    assert saved.status_code == 303, saved.text
    shown = await client.get(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}", headers=owner.headers
    )
    assert shown.json()["data"]["phone_number_id"] == "1122334455667"
