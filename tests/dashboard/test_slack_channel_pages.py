"""The dashboard connects a Slack app (bot token and signing secret, checked against the
Slack sandbox) and shows the request URL to paste into the app's settings."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from botplatform.sandbox.slack import TEAM_ID, FakeSlack
from tests.conftest import SLACK_SIGNING_SECRET, SLACK_TOKEN, Api
from tests.dashboard.conftest import Tab
from tests.dashboard.helpers import browser_login, post_form, unlabelled_controls


async def test_connect_slack_from_the_dashboard(
    client: httpx.AsyncClient, api: Api, slack: FakeSlack
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    listing = await client.get(f"/app/w/{ws}/channels")
    assert "Connect Slack" in listing.text
    new = f"/app/w/{ws}/channels/new?provider=slack"
    form = await client.get(new)
    assert form.status_code == 200 and "Bot User OAuth Token" in form.text
    assert "Verify token" not in form.text and not unlabelled_controls(form.text)
    wrong = await post_form(
        client,
        new,
        f"/app/w/{ws}/channels",
        {"provider": "slack", "bot_token": "xoxb-not-known", "signing_secret": "s3cret-value"},
    )
    assert wrong.status_code == 422 and "Slack refused the bot token" in wrong.text
    assert "s3cret-value" not in wrong.text and "xoxb-not-known" not in wrong.text
    made = await post_form(
        client,
        new,
        f"/app/w/{ws}/channels",
        {"provider": "slack", "bot_token": SLACK_TOKEN, "signing_secret": SLACK_SIGNING_SECRET},
    )
    assert made.status_code == 303, made.text
    detail = await client.get(made.headers["location"])
    assert "/webhooks/slack/" in detail.text and TEAM_ID in detail.text
    assert "Event Subscriptions" in detail.text and "Meta" not in detail.text
    assert "Phone number ID" not in detail.text and "Signing secret" in detail.text
    assert SLACK_TOKEN not in detail.text and SLACK_SIGNING_SECRET not in detail.text


async def test_slack_pages_in_the_browser(tab: Tab, api: Api, slack: FakeSlack) -> None:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Support")
    await tab.login(owner)
    await tab.open(f"/app/w/{ws}/channels/new?provider=slack")
    page = tab.page
    await page.get_by_label("Bot User OAuth Token").fill(SLACK_TOKEN)
    await page.get_by_label("Signing secret").fill(SLACK_SIGNING_SECRET)
    await tab.shot("slack-connect")
    await page.get_by_role("button", name="Connect").click()
    await expect(
        page.get_by_role("heading", name="Request URL (paste into the Slack app)")
    ).to_be_visible()
    await tab.shot("slack-channel")
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    for name, path in (("slack-channel-phone", None), ("slack-connect-phone", "new")):
        if path:
            await tab.open(f"/app/w/{ws}/channels/new?provider=slack")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{name} scrolls sideways at phone width ({width}px)"
        await tab.shot(name)
