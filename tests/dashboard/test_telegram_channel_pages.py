"""The dashboard connects a Telegram bot by its token alone (the platform calls getMe and
setWebhook on the fake Bot API), shows the bot and its registered webhook, and deletes it
(deleteWebhook); in a real browser too, at desktop and phone width."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from botplatform.sandbox.telegram import FakeBotApi
from tests.conftest import TELEGRAM_TOKEN, Api
from tests.dashboard.conftest import Tab
from tests.dashboard.helpers import browser_login, post_form, unlabelled_controls


async def test_connect_a_telegram_bot_from_the_dashboard(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    new = f"/app/w/{ws}/channels/new?provider=telegram"
    form = await client.get(new)
    assert form.status_code == 200 and "BotFather" in form.text and "Bot token" in form.text
    assert "App secret" not in form.text and not unlabelled_controls(form.text)
    refused = await post_form(
        client, new, f"/app/w/{ws}/channels", {"provider": "telegram", "bot_token": "1:nope"}
    )
    assert refused.status_code == 422 and "Telegram refused the bot token" in refused.text
    made = await post_form(
        client, new, f"/app/w/{ws}/channels", {"provider": "telegram", "bot_token": TELEGRAM_TOKEN}
    )
    assert made.status_code == 303, made.text
    detail = await client.get(made.headers["location"])
    bot = tg.bots[TELEGRAM_TOKEN]
    assert f"@{bot.username}" in detail.text and "/webhooks/telegram/" in detail.text
    assert TELEGRAM_TOKEN not in detail.text and bot.secret_token not in detail.text
    listing = await client.get(f"/app/w/{ws}/channels")
    assert f"@{bot.username}" in listing.text and "Connect Telegram" in listing.text


async def test_telegram_pages_in_the_browser(tab: Tab, api: Api, tg: FakeBotApi) -> None:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Support")
    await tab.login(owner)
    await tab.open(f"/app/w/{ws}/channels/new?provider=telegram")
    await expect(tab.page.get_by_role("heading", level=1)).to_contain_text("Telegram bot")
    await tab.page.get_by_label("Bot token").fill(TELEGRAM_TOKEN)
    await tab.shot("telegram-connect")
    await tab.page.get_by_role("button", name="Connect").click()
    await expect(tab.page.locator("#webhook-url")).to_contain_text("/webhooks/telegram/")
    await tab.shot("telegram-detail")
    await tab.page.set_viewport_size({"width": 390, "height": 844})
    width = await tab.page.evaluate("document.documentElement.scrollWidth")
    await tab.shot("telegram-detail-phone")
    assert width <= 390, f"the channel page scrolls sideways at phone width ({width}px)"
    await tab.open(f"/app/w/{ws}/channels/new?provider=telegram")
    await tab.shot("telegram-connect-phone")
