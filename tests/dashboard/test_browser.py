"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the real
app over HTTP: 2FA login, a WhatsApp message arriving live, an agent's reply reaching the
fake Graph API, an API key that works, what an agent may not see, and CSRF refusal."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.async_api import WebSocketRoute, expect

from botplatform.auth.service import find_by_email
from botplatform.dashboard import inbox
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import Account, Api, eventually
from tests.dashboard.conftest import Tab, enable_two_factor, login_by_keyboard, unique_phone
from tests.fakes.webhook_receiver import running_receiver


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
    # open conversation without a reload, pushed through the events socket: the page says the
    # socket is subscribed, and the message arrives well before the fallback poll could fire.
    await expect(page.locator("body")).to_have_attribute("data-live", "connected")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    await wa.post_inbound_text(phone, "Order #4521, <b>please</b> hurry", "Maria Lopez")
    started = time.monotonic()
    await expect(page.locator("#messages")).to_contain_text(
        "Order #4521, <b>please</b> hurry", timeout=inbox.FALLBACK_POLL_SECONDS * 1000 / 3
    )
    assert time.monotonic() - started < inbox.FALLBACK_POLL_SECONDS / 3
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
        "usage": f"/app/w/{ws}/usage",
        "account": "/app/account",
    }
    for name, path in pages.items():
        await tab.open(path)
        await expect(tab.page.locator("h1")).to_be_visible()
        await tab.shot(name)
    # A hidden element stays hidden whatever its class sets (the logo preview until a file
    # is chosen).
    await tab.open(pages["settings"])
    await expect(tab.page.locator("#logo-preview")).to_be_hidden()
    contact = tab.page
    await tab.open(f"/app/w/{ws}/contacts")
    await contact.get_by_role("link", name="Priya Natarajan").click()
    await expect(contact.get_by_role("heading", name="Consent ledger")).to_be_visible()
    await expect(contact.locator("table")).to_contain_text("opt_out")
    await tab.shot("contact-detail")

    await tab.page.set_viewport_size({"width": 390, "height": 844})  # a phone
    for name in ("inbox", "contacts", "channels", "members", "audit-log", "settings", "usage"):
        await tab.open(pages[name])
        width = await tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{name} scrolls sideways at phone width ({width}px)"
        await tab.shot(f"{name}-phone")
    await tab.page.set_viewport_size({"width": 1280, "height": 860})

    async with runtime.db.unit_of_work(system=True) as db:
        user = await find_by_email(db, owner.email)
        assert user is not None
        user.is_superadmin = True
    for name in ("workspaces", "users", "plans", "queue"):
        await tab.open(f"/admin/{name}")
        await expect(tab.page.get_by_role("heading", level=1)).to_be_visible()
        await tab.shot(f"admin-{name}")


async def test_webhook_and_automation_pages_in_the_browser(
    tab: Tab, api: Api, wa: FakeGraph, client: httpx.AsyncClient
) -> None:
    owner, ws, _ = await _workspace_with_channel(api, wa)
    await tab.login(owner)
    page = tab.page
    page.on("dialog", lambda dialog: dialog.accept())  # the data-confirm questions
    async with running_receiver() as receiver:
        await tab.open(f"/app/w/{ws}/webhooks")
        await page.get_by_label("URL (https://…)").fill(receiver.url)
        await page.get_by_label("Description (optional)").fill("CRM sync")
        await page.get_by_label("message.received").check()
        await page.get_by_role("button", name="Create endpoint").click()
        await expect(page.locator("#new-secret")).to_contain_text("whsec_")
        await tab.shot("webhooks-created")
        await page.get_by_role("link", name="Open the endpoint").click()
        await expect(page.get_by_role("heading", name="Deliveries")).to_be_visible()

        await wa.post_inbound_text(unique_phone(), "Is my parcel lost?", "Lena Fischer")
        await eventually(lambda: receiver.received)
        delivery = page.locator("table a").first
        # The log shows the delivery once the worker has written its outcome, a moment after
        # the receiver has it (the row is `pending` while the attempt is being written).
        for _ in range(40):
            await page.reload()
            if await page.locator("table", has_text="succeeded").count():
                break
            await page.wait_for_timeout(250)
        await expect(page.locator("table")).to_contain_text("succeeded")
        await tab.shot("webhook-endpoint")
        await delivery.click()
        await expect(page.get_by_role("heading", name="Attempts")).to_be_visible()
        await expect(page.locator("table")).to_contain_text("HTTP 200")
        await tab.shot("webhook-delivery")
        await page.get_by_role("button", name="Replay now").click()
        await expect(page.locator("#flash")).to_contain_text("Replay queued")
        await eventually(lambda: len(receiver.received) >= 2 or None)
        await page.get_by_role("link", name=receiver.url).click()
        await page.get_by_role("button", name="Rotate secret").click()
        await expect(page.locator("#new-secret")).to_contain_text("whsec_")

    await tab.open(f"/app/w/{ws}/automations/new")
    await page.get_by_label("Name").fill("Lost parcels")
    await page.get_by_text("Advanced: the rule as JSON").click()
    await page.get_by_label("Actions (JSON list, run in order)").fill('[{"type": "explode"}]')
    await page.get_by_role("button", name="Create rule").click()
    await expect(page.locator("#rule-problems")).to_contain_text("actions.0")
    await tab.shot("automation-invalid")
    await page.get_by_label("Actions (JSON list, run in order)").fill(
        '[{"type": "add_label", "labels": ["parcels"]}]'
    )
    await page.get_by_role("button", name="Create rule").click()
    await expect(page.locator("#flash")).to_contain_text("Automation rule created")
    await wa.post_inbound_text(unique_phone(), "Where is my refund?", "Omar Haddad")
    for _ in range(20):
        await page.reload()
        if await page.locator("section table").count():
            break
        await page.wait_for_timeout(250)
    await expect(page.locator("section table")).to_contain_text("add_label: succeeded")
    await tab.shot("automation-rule")
    await tab.open(f"/app/w/{ws}/automations")
    await expect(page.locator("table")).to_contain_text("Lost parcels")
    await tab.shot("automations")
    await tab.open(f"/app/w/{ws}/teams")
    await page.get_by_label("Name", exact=True).fill("Billing")
    await page.get_by_label("Olivia Owner").check()
    await page.get_by_role("button", name="Create team").click()
    await expect(page.locator("#flash")).to_contain_text("Team created")
    await tab.shot("teams")
    await tab.open(f"/app/w/{ws}/business-hours")
    await page.get_by_label("Monday").fill("09:00-17:00")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_label("Monday")).to_have_value("09:00-17:00")
    await tab.shot("business-hours")

    await page.set_viewport_size({"width": 390, "height": 844})
    for name in ("webhooks", "automations", "teams", "business-hours"):
        await tab.open(f"/app/w/{ws}/{name}")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{name} scrolls sideways at phone width ({width}px)"
        await tab.shot(f"{name}-phone")


async def test_the_inbox_falls_back_to_a_slow_poll_while_the_socket_is_down(
    tab: Tab, api: Api, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "FALLBACK_POLL_SECONDS", 1)  # the app runs in this process
    owner, ws, _ = await _workspace_with_channel(api, wa)
    phone = unique_phone()
    await wa.post_inbound_text(phone, "First message", "Kai Tanaka")
    refused: list[str] = []

    async def refuse(socket: WebSocketRoute) -> None:
        refused.append(socket.url)
        await socket.close(code=1011, reason="down for the test")

    await tab.page.route_web_socket(re.compile(r".*/events/ws$"), refuse)
    await tab.login(owner)
    page = tab.page
    await tab.open(f"/app/w/{ws}/inbox")
    await page.locator("#conv-list a", has_text="Kai Tanaka").click()
    await expect(page.locator("body")).to_have_attribute("data-live", "down")
    await wa.post_inbound_text(phone, "Second message", "Kai Tanaka")
    await expect(page.locator("#messages")).to_contain_text("Second message", timeout=8000)
    assert refused and refused[0].startswith("ws://")  # it tried the socket, same origin
    await page.wait_for_timeout(2500)
    assert len(refused) >= 2  # and keeps trying to reconnect (1 s, then 2 s …)


async def test_messenger_channel_pages_in_the_browser(
    tab: Tab, api: Api, wa: FakeGraph, client: httpx.AsyncClient
) -> None:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Support")
    await tab.login(owner)
    await tab.open(f"/app/w/{ws}/channels/new?provider=messenger")
    await expect(tab.page.get_by_role("heading", level=1)).to_contain_text("Messenger")
    await tab.page.get_by_label("Name (for your team)").fill("Facebook Page")
    await tab.page.get_by_label("Page ID").fill("1029384756")
    await tab.page.get_by_label("Page access token").fill("EAAG-page-secret")
    await tab.shot("channel-connect-messenger")
    await tab.page.get_by_role("button", name="Connect").click()
    await expect(tab.page.locator("#webhook-url")).to_contain_text("/webhooks/messenger/")
    await expect(tab.page.locator("#verify-token")).not_to_be_empty()
    await tab.shot("channel-detail-messenger")
    await tab.open(f"/app/w/{ws}/channels")
    await tab.page.get_by_role("button", name="Instagram sandbox").click()
    await expect(tab.page.locator("#sandbox-say")).to_contain_text("/_sandbox/meta/inbound")
    await tab.shot("channel-detail-instagram-sandbox")
