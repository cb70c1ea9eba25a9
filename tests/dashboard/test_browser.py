"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the real
app over HTTP: 2FA login, a WhatsApp message arriving live, an agent's reply reaching the
fake Graph API, an API key that works, what an agent may not see, and CSRF refusal."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import expect

from botplatform.auth.service import find_by_email
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import Account, Api, eventually
from tests.dashboard.conftest import Tab, enable_two_factor, login_by_keyboard, unique_phone


async def _workspace_with_channel(api: Api, wa: FakeGraph) -> tuple[Account, str, dict[str, str]]:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Support")
    channel = await api.create_channel(owner, ws, display_phone_number="+1 555 000 1111")
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    return owner, ws, channel


async def test_login_with_2fa_then_live_inbox_and_reply(
    tab: Tab, api: Api, wa: FakeGraph, client: httpx.AsyncClient
) -> None:
    owner, ws, _ = await _workspace_with_channel(api, wa)
    totp = await enable_two_factor(api, owner)
    phone = unique_phone()
    await wa.post_inbound_text(phone, "Hi, where is my order?", "Maria Lopez")

    await tab.login(owner, code_for=totp)
    page = tab.page
    await tab.open(f"/app/w/{ws}/inbox")
    await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    await expect(page.locator("#conv-list")).to_contain_text("Maria Lopez")
    await page.locator("#conv-list a", has_text="Maria Lopez").click()
    await expect(page.locator("#messages")).to_contain_text("where is my order?")

    # A new WhatsApp message, posted to the webhook by the fake Graph API, shows up in the
    # open conversation without a reload.
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    await wa.post_inbound_text(phone, "Order #4521, <b>please</b> hurry", "Maria Lopez")
    await expect(page.locator("#messages")).to_contain_text("Order #4521, <b>please</b> hurry")
    assert navigations == []
    await tab.shot("inbox-conversation")

    # The agent replies; the fake Graph API receives it and the tick moves on.
    await page.get_by_label("Reply to Maria Lopez").fill("It ships today!")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#messages")).to_contain_text("It ships today!")
    await expect(page.get_by_label("Reply to Maria Lopez")).to_have_value("")
    sent = await eventually(lambda: [m for m in wa.sent if m["body"].get("text")])
    assert sent[0]["body"]["text"]["body"] == "It ships today!"
    assert sent[0]["to"] == phone
    await expect(page.locator(".bubble.outbound .tick").last).to_have_attribute(
        "aria-label", re.compile("Sent|Delivered|Read")
    )

    # A note stays inside; resolving moves the conversation.
    await page.get_by_label("Reply to Maria Lopez").fill("VIP customer")
    await page.get_by_label("Internal note (not sent)").check()
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".bubble.note")).to_contain_text("VIP customer")
    await page.get_by_role("button", name="Resolve").click()
    await expect(page.locator("#thread .thread-head")).to_contain_text("resolved")
    assert not [m for m in wa.sent if m["body"].get("text", {}).get("body") == "VIP customer"]

    await page.set_viewport_size({"width": 390, "height": 844})
    await tab.shot("inbox-phone")


async def test_api_key_created_in_the_browser_works_against_the_api(
    tab: Tab, api: Api, wa: FakeGraph, client: httpx.AsyncClient
) -> None:
    owner, ws, _ = await _workspace_with_channel(api, wa)
    await login_by_keyboard(tab, owner)
    page = tab.page
    await page.keyboard.press("Tab")  # the first stop on every page skips to the content
    await expect(page.locator("a.skip")).to_be_focused()
    await tab.open(f"/app/w/{ws}/api-keys")
    await page.get_by_label("Name", exact=True).fill("CRM sync")
    await page.get_by_label("conversations:read").check()
    await page.get_by_role("button", name="Create key").click()
    key = (await page.locator("#new-key").inner_text()).strip()
    assert key.startswith("bp_live_")
    await tab.shot("api-keys")

    answer = await client.get(
        f"/api/v1/workspaces/{ws}/conversations", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 200, answer.text
    refused = await client.get(
        f"/api/v1/workspaces/{ws}/api-keys", headers={"Authorization": f"Bearer {key}"}
    )
    assert refused.status_code == 403  # only the scope that was ticked

    await tab.open(f"/app/w/{ws}/api-keys")  # shown once: not on the next visit
    await expect(page.locator("#new-key")).to_have_count(0)
    await expect(page.locator("table")).to_contain_text("CRM sync")


async def test_agent_sees_and_opens_no_admin_only_pages(
    tab: Tab, api: Api, wa: FakeGraph, client: httpx.AsyncClient
) -> None:
    owner, ws, channel = await _workspace_with_channel(api, wa)
    agent = await api.add_member(owner, ws, "agent")
    assigned = await client.put(
        f"/api/v1/workspaces/{ws}/members/{agent.user_id}/channels",
        json={"channel_ids": [channel["id"]]},
        headers=owner.headers,
    )  # an agent sees only the channels it is assigned to
    assert assigned.status_code == 200
    await tab.login(agent)
    page = tab.page
    nav = page.get_by_role("navigation", name="Workspace")
    await expect(nav).to_contain_text("Inbox")
    for hidden in ("API keys", "Audit log"):
        await expect(nav.get_by_role("link", name=hidden)).to_have_count(0)
    await expect(page.get_by_role("link", name="Admin")).to_have_count(0)

    for path in (f"/app/w/{ws}/api-keys", f"/app/w/{ws}/audit", "/admin/workspaces"):
        response = await page.goto(f"{tab.base}{path}")
        assert response is not None
        assert response.status == 403, path
        await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    await tab.shot("agent-refused")

    # An agent replies, but cannot assign or resolve (conversations:manage).
    await wa.post_inbound_text(unique_phone(), "hello", "Sam Agentcase")
    await tab.open(f"/app/w/{ws}/inbox")
    await page.locator("#conv-list a", has_text="Sam Agentcase").click()
    await expect(page.get_by_role("button", name="Resolve")).to_have_count(0)
    await page.get_by_label("Reply to Sam Agentcase").fill("Hi Sam, how can I help?")
    await page.keyboard.press("Enter")  # Enter sends; Shift+Enter would start a new line
    await expect(page.locator("#messages")).to_contain_text("how can I help?")
    sent = await eventually(lambda: [m for m in wa.sent if m["body"].get("text")])
    assert sent[0]["body"]["text"]["body"] == "Hi Sam, how can I help?"


async def test_a_forged_post_without_the_csrf_token_is_refused(
    tab: Tab, api: Api, wa: FakeGraph, client: httpx.AsyncClient
) -> None:
    owner, ws, _ = await _workspace_with_channel(api, wa)
    await tab.login(owner)
    await tab.open(f"/app/w/{ws}/settings")
    # The browser holds the session cookie; a post without the page's token is refused.
    status = await tab.page.evaluate(
        """async (url) => {
            const body = new URLSearchParams({name: "Hijacked"});
            const r = await fetch(url, {method: "POST", body, credentials: "include"});
            return r.status;
        }""",
        f"{tab.base}/app/w/{ws}/settings",
    )
    assert status == 403
    me = await client.get(f"/api/v1/workspaces/{ws}", headers=owner.headers)
    assert me.json()["data"]["name"] == "Acme Support"


async def test_screenshots_of_the_main_pages(
    tab: Tab, api: Api, wa: FakeGraph, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner, ws, channel = await _workspace_with_channel(api, wa)
    await wa.post_inbound_text(unique_phone(), "STOP", "Priya Natarajan")
    await wa.post_inbound_text(unique_phone(), "Do you ship to Lisbon?", "João Silva")
    await api.invite(owner, ws, "new.agent@example.com", "agent")
    await api.conversation_of(owner, ws, "João Silva")
    await tab.login(owner)
    pages = {
        "inbox": f"/app/w/{ws}/inbox",
        "contacts": f"/app/w/{ws}/contacts",
        "channels": f"/app/w/{ws}/channels",
        "channel-connect": f"/app/w/{ws}/channels/new",
        "channel-detail": f"/app/w/{ws}/channels/{channel['id']}",
        "members": f"/app/w/{ws}/members",
        "audit-log": f"/app/w/{ws}/audit",
        "settings": f"/app/w/{ws}/settings",
        "account": "/app/account",
    }
    for name, path in pages.items():
        await tab.open(path)
        await expect(tab.page.locator("h1")).to_be_visible()
        await tab.shot(name)
    contact = tab.page
    await tab.open(f"/app/w/{ws}/contacts")
    await contact.get_by_role("link", name="Priya Natarajan").click()
    await expect(contact.get_by_role("heading", name="Consent ledger")).to_be_visible()
    await expect(contact.locator("table")).to_contain_text("opt_out")
    await tab.shot("contact-detail")

    await tab.page.set_viewport_size({"width": 390, "height": 844})  # a phone
    for name in ("inbox", "contacts", "channels", "members", "audit-log", "settings"):
        await tab.open(pages[name])
        width = await tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{name} scrolls sideways at phone width ({width}px)"
        await tab.shot(f"{name}-phone")
    await tab.page.set_viewport_size({"width": 1280, "height": 860})

    async with runtime.db.unit_of_work(system=True) as db:
        user = await find_by_email(db, owner.email)
        assert user is not None
        user.is_superadmin = True
    for name in ("workspaces", "users", "queue"):
        await tab.open(f"/admin/{name}")
        await expect(tab.page.get_by_role("heading", level=1)).to_be_visible()
        await tab.shot(f"admin-{name}")
