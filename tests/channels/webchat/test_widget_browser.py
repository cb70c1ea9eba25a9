"""The widget in a real browser (Debian's Chromium): a plain page on another loopback origin,
under a strict CSP, embeds the snippet; the visitor chats with a published bot, is handed to
an agent who answers from the dashboard in a second browser context, reloads and finds the
history, falls back to long-polling when the socket is refused, and sees markup as text."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Browser, Page, WebSocketRoute, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from botplatform.config import Settings
from tests.bot.flows import support_flow
from tests.bot.helpers import create_bot, publish
from tests.channels.webchat.helpers import webchat_channel
from tests.conftest import Api
from tests.dashboard.conftest import SCREENSHOTS, Tab, sqlite_only
from tests.serving import free_port, serving

XSS = "<img src=x onerror=window.__pwned=1> javascript:alert(1)"


def _host_page(platform: str, channel_id: str) -> Starlette:
    """A customer's site: no inline script or style allowed, only the platform's origin."""
    ws = platform.replace("http://", "ws://")
    policy = (
        f"default-src 'none'; script-src {platform}; connect-src {platform} {ws}; "
        f"img-src {platform} https:; style-src 'none'; base-uri 'none'"
    )

    async def page(request: Request) -> HTMLResponse:
        html = (
            "<!doctype html><html lang=en><head><meta charset=utf-8><title>Shop</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
            "<body><h1>Our shop</h1><p>Plain content.</p>"
            f'<script src="{platform}/widget/{channel_id}.js" async></script></body></html>'
        )
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})

    return Starlette(routes=[Route("/", page)])


async def _widget(page: Page) -> None:
    await expect(page.get_by_role("button", name=re.compile("Open chat"))).to_be_visible()


async def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


async def test_widget_chat_bot_handoff_agent_history_and_polling(
    browser: Browser, live_url: str, settings: Settings, api: Api, client: httpx.AsyncClient
) -> None:
    sqlite_only(settings)
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Shop")
    port = free_port()
    site = f"http://localhost:{port}"
    channel = await webchat_channel(
        api, owner, ws, allowed_origins=[site], welcome_message="Welcome to Acme!",
        pre_chat_fields=["name"],
    )  # fmt: skip
    bot = await create_bot(api, owner, ws, support_flow(), channel_ids=[channel["id"]])
    await publish(api, owner, ws, bot["id"])

    async with serving(_host_page(live_url, channel["id"]), port):
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        page.set_default_timeout(15_000)
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "console",
            lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
        )
        await page.goto(site)
        await _widget(page)
        await _shot(page, "widget-closed")

        await page.get_by_role("button", name="Open chat").click()
        dialog = page.get_by_role("dialog")
        await expect(dialog).to_contain_text("Welcome to Acme!")
        await dialog.get_by_label("Your name").fill("Wendy Web")
        await dialog.get_by_role("button", name="Start the chat").click()
        box = dialog.get_by_label("Write a message")
        await box.fill("hi")
        await box.press("Enter")
        await expect(dialog.get_by_role("button", name="Sales")).to_be_visible()
        await _shot(page, "widget-open-bot")
        await dialog.get_by_role("button", name="Sales").click()
        await expect(dialog).to_contain_text("Your email, please?")
        await box.fill("wendy@example.com")
        await box.press("Enter")
        await expect(dialog).to_contain_text("An agent will write to wendy@example.com")

        # The agent, in a second browser context, answers from the inbox.
        agent = Tab(await (await browser.new_context()).new_page(), live_url)
        await agent.login(owner)
        await agent.open(f"/app/w/{ws}/channels/{channel['id']}")
        await expect(agent.page.locator("#widget-snippet")).to_have_text(
            channel["webchat"]["snippet"]
        )
        await agent.shot("webchat-channel-snippet")
        await agent.open(f"/app/w/{ws}/inbox")
        await agent.page.locator("#conv-list a", has_text="Wendy Web").click()
        await agent.page.get_by_label("Reply to Wendy Web").fill("Hello Wendy, Alex here.")
        await agent.page.get_by_role("button", name="Send").click()
        await expect(dialog).to_contain_text("Hello Wendy, Alex here.")

        # Markup a visitor writes is text, in the widget and in the agent's inbox.
        await box.fill(XSS)
        await box.press("Enter")
        await expect(agent.page.locator("#messages")).to_contain_text(XSS)
        assert await page.evaluate("window.__pwned === undefined")
        assert await agent.page.evaluate("window.__pwned === undefined")
        await _shot(page, "widget-open-agent")

        # A reload restores the conversation from the server.
        await page.reload()
        await page.get_by_role("button", name=re.compile("Open chat")).click()
        await expect(page.get_by_role("dialog")).to_contain_text("Hello Wendy, Alex here.")
        await expect(page.get_by_role("dialog")).to_contain_text(XSS)
        assert not problems, problems
        await context.close()

        # Sockets refused: the widget falls back to long-polling and still gets replies.
        phone = await browser.new_context(viewport={"width": 390, "height": 760}, is_mobile=True)
        mobile = await phone.new_page()
        mobile.set_default_timeout(20_000)

        async def refuse(route: WebSocketRoute) -> None:
            await route.close(code=1006)

        await mobile.route_web_socket(re.compile(r".*/socket$"), refuse)
        await mobile.goto(site)
        await mobile.get_by_role("button", name=re.compile("Open chat")).click()
        panel = mobile.get_by_role("dialog")
        await panel.get_by_label("Your name").fill("Paula Phone")
        await panel.get_by_role("button", name="Start the chat").click()
        await panel.get_by_label("Write a message").fill("Is anyone there?")
        await panel.get_by_label("Write a message").press("Enter")
        await agent.open(f"/app/w/{ws}/inbox")
        await agent.page.locator("#conv-list a", has_text="Paula Phone").click()
        await agent.page.get_by_label("Reply to Paula Phone").fill("Yes, by long-poll!")
        await agent.page.get_by_role("button", name="Send").click()
        await expect(panel).to_contain_text("Yes, by long-poll!", timeout=20_000)
        await _shot(mobile, "widget-phone")
        await panel.get_by_role("button", name="Close chat").click()
        # A reply while the panel is closed: the launcher shows it unread.
        await agent.page.get_by_label("Reply to Paula Phone").fill("Still there?")
        await agent.page.get_by_role("button", name="Send").click()
        launcher = mobile.get_by_role("button", name=re.compile("Open chat"))
        await expect(launcher).to_have_accessible_name(
            re.compile("1 unread message"), timeout=20_000
        )
        await _shot(mobile, "widget-phone-closed")
        await phone.close()


async def test_add_a_website_chat_from_the_dashboard(tab: Tab, api: Api) -> None:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Shop")
    await tab.login(owner)
    await tab.open(f"/app/w/{ws}/channels")
    await tab.page.get_by_role("link", name="Add a website chat").click()
    await expect(tab.page.get_by_role("heading", name="Add a chat to your website")).to_be_visible()
    await tab.page.get_by_label("Name (for your team)").fill("Main site")
    await tab.page.get_by_label("Allowed sites (one per line)").fill("www.example.com")
    await tab.page.get_by_role("button", name="Connect").click()
    await expect(tab.page.locator("#e-allowed_origins")).to_contain_text("https://")
    await tab.page.get_by_label("Allowed sites (one per line)").fill(
        "https://www.example.com\nhttps://*.example.org"
    )
    await tab.page.get_by_label("Welcome message (optional)").fill("Hello <there>!")
    await tab.page.get_by_label("Email (replies reach visitors who left)").check()
    await tab.page.get_by_role("button", name="Connect").click()
    snippet = tab.page.locator("#widget-snippet")
    await expect(snippet).to_contain_text('<script src="')
    await expect(snippet).to_contain_text('.js" async></script>')
    await expect(tab.page.locator("main")).to_contain_text("https://*.example.org")
    await expect(tab.page.locator("main")).to_contain_text("Hello <there>!")
    await tab.shot("webchat-channel-created")
