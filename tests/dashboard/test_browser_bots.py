"""The bot pages in a real browser (Debian's Chromium via Playwright, the fixtures of
tests/dashboard/conftest.py): a bot is edited, shows a validation error next to its node, is
fixed and published, and the simulator answers turn after turn without a reload."""

from __future__ import annotations

import copy
import json
import re

import httpx
from playwright.async_api import expect

from tests.bot.flows import support_flow
from tests.conftest import Api
from tests.dashboard.conftest import Tab


async def test_a_bot_is_edited_fixed_published_and_simulated(
    tab: Tab, api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Support")
    flow = support_flow()
    created = await api.http.post(
        f"/api/v1/workspaces/{ws}/bots",
        json={"name": "Support bot", "flow": {"triggers": [], "nodes": [], "edges": []}},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    bot_id = created.json()["data"]["id"]

    await tab.login(owner)
    page = tab.page
    await page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Bots").click()
    await expect(page.get_by_role("heading", name="Bots", exact=True)).to_be_visible()
    await tab.shot("bots")
    await page.get_by_role("link", name="Support bot").click()
    await expect(page.get_by_role("heading", name="Support bot")).to_be_visible()

    # An edit with a mistake: the ask node lost its question. The problem shows next to it.
    broken = copy.deepcopy(flow)
    del broken["nodes"][1]["question"]
    await page.get_by_text("Advanced: the flow as JSON").click()
    editor = page.get_by_label("Flow (JSON)")
    await editor.fill(json.dumps(broken, indent=2))
    await page.get_by_role("button", name="Save draft").click()
    marked = page.locator("#node-ask_email")
    await expect(marked).to_have_class("node has-error")
    await expect(marked).to_contain_text("needs `question`")
    card = page.locator("#n1")  # the ask node's card in the forms says it too
    await expect(card).to_have_class(re.compile("has-error"))
    await expect(card).to_contain_text("needs `question`")
    await expect(page.locator("#n0")).not_to_have_class(re.compile("has-error"))
    await expect(page.locator("#node-menu")).to_have_class("node")
    await expect(editor).to_have_attribute("aria-invalid", "true")
    assert json.loads(await editor.input_value()) == broken  # what was typed is kept
    await tab.shot("bot-flow-problem")

    # Fixed and saved, then published.
    if not await editor.is_visible():
        await page.get_by_text("Advanced: the flow as JSON").click()
    await editor.fill(json.dumps(flow, indent=2))
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator("#flash")).to_contain_text("Flow saved")
    await expect(page.locator(".node.has-error")).to_have_count(0)
    await page.get_by_label("Note", exact=True).fill("Sales and support menu")
    await page.get_by_role("button", name="Publish draft").click()
    await expect(page.locator("#flash")).to_contain_text("Published")
    await expect(page.locator("#versions")).to_contain_text("v1")
    await expect(page.locator("#versions")).to_contain_text("Sales and support menu")
    await expect(page.locator("#versions")).to_contain_text("live")
    versions = await client.get(
        f"/api/v1/workspaces/{ws}/bots/{bot_id}/versions", headers=owner.headers
    )
    assert versions.json()["data"]["items"][0]["flow"] == flow

    # The simulator: typed messages and a tapped button, the state carried between turns.
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    log = page.locator("#sim-log")
    await page.get_by_label("Message", exact=True).fill("hi")
    await page.get_by_role("button", name="Send").click()
    await expect(log).to_contain_text("Hi Test Customer! What do you need?")
    await expect(page.locator("#sim-status")).to_contain_text("waiting for input")
    await expect(page.get_by_label("Message", exact=True)).to_have_value("")
    await log.get_by_role("button", name="Sales").click()
    await expect(log).to_contain_text("Your email, please?")
    await page.get_by_label("Message", exact=True).fill("dana@example.com")
    await page.keyboard.press("Enter")
    await expect(log).to_contain_text("Thanks! An agent will write to dana@example.com shortly.")
    await expect(page.locator("#sim-status")).to_contain_text("handoff")
    await expect(page.locator("#sim-status")).to_contain_text("topic=sales")
    assert navigations == []
    await tab.shot("bot")

    await page.set_viewport_size({"width": 390, "height": 844})
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the bot page scrolls sideways at phone width ({width}px)"
    await tab.shot("bot-phone")

    # The AI page next to it (read with bots:read), for the screenshots.
    await page.set_viewport_size({"width": 1280, "height": 860})
    await api.http.post(
        f"/api/v1/workspaces/{ws}/ai/intents",
        json={"name": "order_status", "examples": ["where is my order", "track my parcel"]},
        headers=owner.headers,
    )
    await page.get_by_role("navigation", name="Workspace").get_by_role("link", name="AI").click()
    await expect(page.locator("#intents")).to_contain_text("track my parcel")
    await tab.shot("ai")
