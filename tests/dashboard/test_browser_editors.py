"""The flow and automation editors in Chromium under the real CSP, without typing JSON: the
flow of docs/api.md is built with the forms (nodes added, filled, connected port by port,
one removed), published and simulated; a malformed JSON draft leaves the nodes list on what
was saved; screenshots at desktop and phone width."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from tests.conftest import Api
from tests.dashboard.conftest import SCREENSHOTS, Tab
from tests.dashboard.editor_flows import docs_flow, every_kind_flow


async def test_the_docs_flow_is_built_published_and_simulated_without_json(
    tab: Tab, api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Support")
    await tab.login(owner)
    page = tab.page
    await tab.open(f"/app/w/{ws}/bots")
    await page.get_by_label("Name").fill("Docs bot")
    await page.get_by_role("button", name="Create bot").click()
    await expect(page.locator("#flash")).to_contain_text("Bot created")

    # The starter's greeting goes; its trigger stays, without a node for now.
    await page.get_by_role("button", name="Remove node welcome").click()
    await expect(page.locator("#flow-nodes")).to_contain_text("No nodes yet.")
    await expect(page.locator("#unsaved")).to_be_visible()

    await page.get_by_label("New node").select_option(label="Buttons")
    await page.get_by_label("Its id (optional)").fill("menu")
    await page.get_by_role("button", name="Add node").click()
    menu = page.locator("#n0")
    await expect(menu).to_contain_text("Buttons")
    await menu.get_by_label("Text sent").fill("Hi {{contact.name}}!")
    await menu.get_by_label("Button 1 payload (id)").fill("sales")
    await menu.get_by_label("Button 1 title").fill("Sales")

    await page.get_by_label("New node").select_option(label="Ask a question")
    await page.get_by_label("Its id (optional)").fill("ask")
    await page.get_by_role("button", name="Add node").click()
    ask = page.locator("#n1")
    await expect(menu.get_by_label("Button 1 title")).to_have_value("Sales")  # kept
    await menu.get_by_label("“Sales” tapped").select_option("ask")
    await ask.get_by_label("Question", exact=True).fill("Your email?")
    await ask.get_by_label("Expected answer").select_option("email")
    # Enter in a field applies the forms; nothing typed is lost, nothing is saved.
    await ask.get_by_label("Save the answer as contact attribute").fill("email")
    await ask.get_by_label("Save the answer as contact attribute").press("Enter")
    await expect(ask.get_by_label("Save the answer as contact attribute")).to_have_value("email")
    await expect(ask.get_by_label("Question", exact=True)).to_have_value("Your email?")

    await page.get_by_label("New node").select_option(label="Hand off to an agent")
    await page.get_by_label("Its id (optional)").fill("agent")
    await page.get_by_label("After", exact=True).select_option(label="ask → Next")
    await page.get_by_role("button", name="Add node").click()
    agent = page.locator("#n2")
    await expect(ask.get_by_label("Next", exact=True)).to_have_value("agent")
    await agent.get_by_label("Message to the customer (optional)").fill("An agent will write soon.")
    trigger = page.locator("#t0")
    await trigger.get_by_label("Keywords").fill("hi")
    await trigger.get_by_label("Starts at node").select_option("menu")
    await tab.shot("bot-editor-built")
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator("#flash")).to_contain_text("Flow saved")

    saved = await client.get(f"/api/v1/workspaces/{ws}/bots", headers=owner.headers)
    bot = saved.json()["data"]["items"][0]
    assert bot["flow"] == docs_flow()

    await page.get_by_label("Note", exact=True).fill("The docs flow")
    await page.get_by_role("button", name="Publish draft").click()
    await expect(page.locator("#flash")).to_contain_text("Published")
    await expect(page.locator("#versions")).to_contain_text("live")

    log = page.locator("#sim-log")
    await page.get_by_label("Message", exact=True).fill("hi")
    await page.get_by_role("button", name="Send").click()
    await expect(log).to_contain_text("Hi Test Customer!")
    await log.get_by_role("button", name="Sales").click()
    await expect(log).to_contain_text("Your email?")
    await page.get_by_label("Message", exact=True).fill("dana@example.com")
    await page.keyboard.press("Enter")
    await expect(log).to_contain_text("An agent will write soon.")
    await expect(page.locator("#sim-status")).to_contain_text("handoff")
    await tab.shot("bot-editor")

    await page.set_viewport_size({"width": 390, "height": 844})
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the flow editor scrolls sideways at phone width ({width}px)"
    await tab.shot("bot-editor-phone")
    await menu.scroll_into_view_if_needed()
    await page.screenshot(path=str(SCREENSHOTS / "bot-editor-phone-node.png"))
    await page.set_viewport_size({"width": 1280, "height": 860})

    # A malformed draft in the advanced view: not saved, and the nodes list and the forms
    # show the saved draft while the typed text waits to be fixed.
    await page.get_by_text("Advanced: the flow as JSON").click()
    await page.get_by_label("Flow (JSON)").fill('{"nodes": [')
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.locator("#f-flow-note")).to_contain_text("Not valid JSON")
    await expect(page.get_by_role("alert").first).to_contain_text("Nothing was saved")
    await expect(page.locator("#flow-saved-note")).to_contain_text("Showing the saved draft")
    listed = page.locator("#flow-problems")
    for node_id in ("menu", "ask", "agent"):
        await expect(listed.locator(f"#node-{node_id}")).to_be_visible()
    await expect(page.locator("#n0").get_by_label("Node id")).to_have_value("menu")
    await expect(page.get_by_label("Flow (JSON)")).to_have_value('{"nodes": [')
    await tab.shot("bot-editor-malformed")


async def test_an_automation_rule_is_built_without_json(
    tab: Tab, api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Support")
    team = await api.http.post(
        f"/api/v1/workspaces/{ws}/teams", json={"name": "Billing"}, headers=owner.headers
    )
    team_id = team.json()["data"]["id"]
    await tab.login(owner)
    page = tab.page
    await tab.open(f"/app/w/{ws}/automations/new")
    await page.get_by_label("Name").fill("Refunds to billing")

    # The example's condition, then an OR group next to it with two conditions.
    first = page.locator("#c\\.0")
    await first.get_by_label("Value").fill("refund")
    await (
        page.locator("#c")
        .get_by_label("New condition in this group")
        .select_option(label="Contact tag")
    )
    await page.get_by_role("button", name="Add a group to the rule").click()
    group = page.locator("#c\\.1")
    await expect(group).to_be_visible()
    await expect(first.get_by_label("Value")).to_have_value("refund")  # kept
    await group.get_by_label("Matches when").first.select_option("any")
    await page.locator("#c\\.1\\.0").get_by_label("Value").fill("vip")
    await group.get_by_label("New condition in this group").select_option(label="Contact attribute")
    await page.get_by_role("button", name="Add condition to group c.1").click()
    attribute = page.locator("#c\\.1\\.1")
    await attribute.get_by_label("Attribute").fill("orders")
    await attribute.get_by_label("Operator").select_option("greater_than")
    await attribute.get_by_label("Value").fill("5")

    # Actions: the example's label stays; a team is assigned.
    await page.get_by_label("New action").select_option(label="Assign a team")
    await page.get_by_role("button", name="Add action").click()
    await page.locator("#a1").get_by_label("Team").select_option(label="Billing")
    await tab.shot("automation-editor")
    await page.set_viewport_size({"width": 390, "height": 844})
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the rule editor scrolls sideways at phone width ({width}px)"
    await attribute.scroll_into_view_if_needed()
    await page.screenshot(path=str(SCREENSHOTS / "automation-editor-phone.png"))
    await page.set_viewport_size({"width": 1280, "height": 860})
    await page.get_by_role("button", name="Create rule").click()
    await expect(page.locator("#flash")).to_contain_text("Automation rule created")

    listed = await client.get(f"/api/v1/workspaces/{ws}/automations", headers=owner.headers)
    rule = listed.json()["data"]["items"][0]
    assert rule["name"] == "Refunds to billing"
    assert rule["conditions"] == {
        "all": [
            {"type": "message_content", "operator": "contains", "value": "refund"},
            {
                "any": [
                    {"type": "contact_tag", "operator": "has", "value": "vip"},
                    {"type": "contact_attribute", "key": "orders", "operator": "greater_than",
                     "value": 5},
                ]
            },
        ]
    }  # fmt: skip
    assert rule["actions"] == [
        {"type": "add_label", "labels": ["billing"]},
        {"type": "assign_team", "team_id": team_id, "round_robin": True},
    ]


async def test_every_node_type_in_the_editor_fits_desktop_and_phone(tab: Tab, api: Api) -> None:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Support")
    created = await api.http.post(
        f"/api/v1/workspaces/{ws}/bots",
        json={"name": "Every node", "flow": every_kind_flow()},
        headers=owner.headers,
    )
    bot_id = created.json()["data"]["id"]
    await tab.login(owner)
    page = tab.page
    await tab.open(f"/app/w/{ws}/bots/{bot_id}")
    await expect(page.locator("#n7")).to_contain_text("Business hours")
    await tab.shot("bot-editor-every-node")
    await page.set_viewport_size({"width": 390, "height": 844})
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the flow editor scrolls sideways at phone width ({width}px)"
    await page.locator("#n7").scroll_into_view_if_needed()
    await page.screenshot(path=str(SCREENSHOTS / "bot-editor-condition-phone.png"))
