"""The bot pages over plain HTTP, on both backends: list and create, the flow editor with the
API's validation problems listed per node, publishing and versions, the simulator carrying
its state between turns, permissions (hidden and refused), tenancy, audit and bad input."""

from __future__ import annotations

import json
import re
import uuid
from html import unescape
from typing import Any

import httpx

from botplatform.runtime import Runtime
from tests.bot.flows import support_flow
from tests.conftest import Account, Api
from tests.dashboard.helpers import browser_login, csrf_of, post_form, unlabelled_controls
from tests.dashboard.test_dashboard import _audit_actions


async def _owner_with_bot(api: Api, flow: dict[str, Any] | None = None) -> tuple[Account, str, str]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/bots",
        json={"name": "Support bot", "flow": flow or support_flow()},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return owner, ws, str(response.json()["data"]["id"])


async def _api_bot(api: Api, owner: Account, ws: str, bot: str) -> dict[str, Any]:
    response = await api.http.get(f"/api/v1/workspaces/{ws}/bots/{bot}", headers=owner.headers)
    return dict(response.json()["data"])


def _hidden(html: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" id="sim-{name}" name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden {name}"
    return unescape(found.group(1))


async def test_create_edit_with_problems_fix_and_publish(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    listing = await client.get(f"/app/w/{ws}/bots")
    assert listing.status_code == 200
    assert "No bots yet." in listing.text and "Create bot" in listing.text
    assert unlabelled_controls(listing.text) == []
    # The create form comes with a starter flow that the API accepts as it is.
    starter = re.search(r'<textarea id="f-flow" name="flow"[^>]*>([^<]*)</textarea>', listing.text)
    assert starter is not None
    created = await post_form(
        client,
        f"/app/w/{ws}/bots",
        f"/app/w/{ws}/bots",
        {"name": "Greeter", "description": "says hi", "flow": unescape(starter.group(1))},
    )
    assert created.status_code == 303, created.text
    bot_path = created.headers["location"].split("?")[0]
    bot_id = bot_path.rsplit("/", 1)[1]
    page = await client.get(created.headers["location"])
    assert page.status_code == 200
    assert "Bot created." in page.text and 'id="node-welcome"' in page.text
    assert unlabelled_controls(page.text) == []
    assert "Greeter" in (await client.get(f"/app/w/{ws}/bots")).text

    # A broken flow: the API's problems are listed next to the node (marked), the edge and
    # the trigger, and the editor keeps what was typed.
    broken = {
        "triggers": [
            {"type": "keyword", "keywords": ["hi"], "node": "welcome"},
            {"type": "keyword", "keywords": ["x"], "node": "nowhere"},
        ],
        "nodes": [
            {"id": "welcome", "type": "send_text"},
            {"id": "bye", "type": "end", "message": "Bye <b>now</b>"},
        ],
        "edges": [{"from": "welcome", "to": "bye"}, {"from": "welcome", "to": "ghost"}],
    }
    refused = await post_form(
        client,
        bot_path,
        bot_path,
        {"name": "Greeter", "enabled": "on", "flow": json.dumps(broken)},
    )
    assert refused.status_code == 422
    html = refused.text
    welcome = re.search(r'<li class="node has-error" id="node-welcome".*?</li>\s*</ul>', html, re.S)
    assert welcome is not None, html
    assert "needs `text`" in unescape(welcome.group(0))
    assert '<li class="node" id="node-bye"' in html  # a node without problems is not marked
    assert 'data-trigger="1"' in html and "starts node &#39;nowhere&#39;" in html
    assert 'data-edge="1"' in html and "Edge #1: welcome → ghost" in html
    assert "Bye &lt;b&gt;now&lt;/b&gt;" in html and "<b>now</b>" not in html
    assert '"id": "welcome"' in unescape(html) or '"id":"welcome"' in unescape(html)
    assert (await _api_bot(api, owner, ws, bot_id))["draft_revision"] == 1  # nothing saved

    not_json = await post_form(client, bot_path, bot_path, {"name": "Greeter", "flow": "{oops"})
    assert not_json.status_code == 422
    assert "Not valid JSON" in not_json.text and "{oops" in not_json.text

    fixed = support_flow()
    saved = await post_form(
        client,
        bot_path,
        bot_path,
        {"name": "Greeter 2", "enabled": "on", "flow": json.dumps(fixed)},
    )
    assert saved.status_code == 303, saved.text
    after = await _api_bot(api, owner, ws, bot_id)
    assert after["name"] == "Greeter 2" and after["flow"] == fixed
    assert after["draft_revision"] == 2 and after["enabled"] is True

    published = await post_form(client, bot_path, f"{bot_path}/publish", {"note": "first cut"})
    assert published.status_code == 303, published.text
    shown = await client.get(published.headers["location"])
    assert "Published" in shown.text
    versions = re.search(r'<table id="versions">.*?</table>', shown.text, re.S)
    assert versions is not None
    assert "v1" in versions.group(0) and "first cut" in versions.group(0)
    assert "live" in versions.group(0)
    listed = await api.http.get(
        f"/api/v1/workspaces/{ws}/bots/{bot_id}/versions", headers=owner.headers
    )
    assert [v["number"] for v in listed.json()["data"]["items"]] == [1]


async def test_publishing_a_flow_without_triggers_is_refused_on_the_page(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner, ws, bot = await _owner_with_bot(api, {"triggers": [], "nodes": [], "edges": []})
    await browser_login(client, owner.email, owner.password)
    path = f"/app/w/{ws}/bots/{bot}"
    answer = await post_form(client, path, f"{path}/publish", {"note": ""})
    assert answer.status_code == 422
    assert "without triggers" in answer.text
    assert "Not published yet." in answer.text


async def test_the_simulator_carries_its_state_between_turns(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner, ws, bot = await _owner_with_bot(api)
    await browser_login(client, owner.email, owner.password)
    path = f"/app/w/{ws}/bots/{bot}"
    page = await client.get(path)
    token = csrf_of(page.text)
    htmx = {"HX-Request": "true", "X-CSRF-Token": token}
    before = len(await _audit_actions(runtime))
    first = await client.post(
        f"{path}/simulate", data={"text": "hi", "state": "", "contact": ""}, headers=htmx
    )
    assert first.status_code == 200, first.text
    assert "Hi Test Customer! What do you need?" in first.text
    # The buttons answer as a tap (their payload) in the next turn.
    assert 'name="payload" value="sales"' in first.text
    assert 'id="sim-state" name="state"' in first.text and 'hx-swap-oob="true"' in first.text
    state = json.loads(_hidden(first.text, "state"))
    assert state["status"] == "running" and state["node_id"] == "menu"
    assert len(await _audit_actions(runtime)) == before + 1  # the API's bot.simulate entry

    second = await client.post(
        f"{path}/simulate",
        data={
            "payload": "sales",
            "state": json.dumps(state),
            "contact": _hidden(first.text, "contact"),
        },
        headers=htmx,
    )
    assert second.status_code == 200, second.text
    assert "Your email, please?" in second.text and "[tapped sales]" in second.text
    third = await client.post(
        f"{path}/simulate",
        data={
            "text": "dana@example.com",
            "state": _hidden(second.text, "state"),
            "contact": _hidden(second.text, "contact"),
        },
        headers=htmx,
    )
    assert "Thanks! An agent will write to dana@example.com shortly." in third.text
    assert "saved email = &#39;dana@example.com&#39;" in third.text
    assert json.loads(_hidden(third.text, "state"))["status"] == "handoff"
    assert "handoff" in third.text

    # Without JavaScript the whole page answers, with the turn and the state to carry on.
    plain = await client.post(f"{path}/simulate", data={"text": "hello", "csrf_token": token})
    assert plain.status_code == 200
    assert "<h1>Support bot</h1>" in plain.text and "What do you need?" in plain.text
    assert json.loads(_hidden(plain.text, "state"))["node_id"] == "menu"

    # Bad turns: a clear 4xx shown in the flash area, never a 500.
    empty = await client.post(f"{path}/simulate", data={"text": " "}, headers=htmx)
    assert empty.status_code == 422 and empty.headers["hx-retarget"] == "#flash"
    forged = await client.post(
        f"{path}/simulate", data={"text": "hi", "state": '{"status": "<x>"}'}, headers=htmx
    )
    assert forged.status_code == 422 and "<x>" not in forged.text
    unpublished = await client.post(
        f"{path}/simulate", data={"text": "hi", "version": "published"}, headers=htmx
    )
    assert unpublished.status_code == 422 and "no published version" in unpublished.text


async def test_permissions_are_hidden_and_refused(client: httpx.AsyncClient, api: Api) -> None:
    owner, ws, bot = await _owner_with_bot(api)
    viewer = await api.add_member(owner, ws, "viewer")
    agent = await api.add_member(owner, ws, "agent")
    path = f"/app/w/{ws}/bots/{bot}"

    await browser_login(client, viewer.email, viewer.password)
    listing = await client.get(f"/app/w/{ws}/bots")
    assert listing.status_code == 200 and f'href="/app/w/{ws}/bots"' in listing.text
    assert "Support bot" in listing.text and "Create bot" not in listing.text
    page = await client.get(path)
    assert page.status_code == 200
    assert "Save draft" not in page.text and "Publish draft" not in page.text
    assert 'id="sim-form"' not in page.text and '"id": "menu"' in unescape(page.text)
    token = csrf_of(page.text)
    for action, data in (
        (f"/app/w/{ws}/bots", {"name": "Mine", "flow": "{}"}),
        (path, {"name": "Renamed", "flow": "{}"}),
        (f"{path}/publish", {"note": ""}),
        (f"{path}/simulate", {"text": "hi"}),
        (f"{path}/delete", {}),
    ):
        refused = await client.post(action, data={**data, "csrf_token": token})
        assert refused.status_code == 403, action
    assert (await _api_bot(api, owner, ws, bot))["name"] == "Support bot"

    client.cookies.clear()
    await browser_login(client, agent.email, agent.password)
    inbox = await client.get(f"/app/w/{ws}/inbox")
    assert f'href="/app/w/{ws}/bots"' not in inbox.text
    for refused_path in (f"/app/w/{ws}/bots", path):
        answer = await client.get(refused_path)
        assert answer.status_code == 403 and "Support bot" not in answer.text


async def test_another_workspaces_bot_is_not_found_and_bad_input_is_4xx(
    client: httpx.AsyncClient, api: Api
) -> None:
    _, _, other_bot = await _owner_with_bot(api)
    me = await api.register()
    ws = await api.create_workspace(me, "Mine")
    await browser_login(client, me.email, me.password)
    for path in (f"/app/w/{ws}/bots/{other_bot}", f"/app/w/{ws}/bots/not-a-uuid"):
        answer = await client.get(path)
        assert answer.status_code == 404 and "Support bot" not in answer.text
    listing = f"/app/w/{ws}/bots"
    token = csrf_of((await client.get(listing)).text)
    for action in (
        f"/app/w/{ws}/bots/{other_bot}",
        f"/app/w/{ws}/bots/{other_bot}/publish",
        f"/app/w/{ws}/bots/{other_bot}/simulate",
    ):
        answer = await client.post(action, data={"text": "hi", "flow": "{}", "csrf_token": token})
        assert answer.status_code == 404, action
    nasty = "%00'\"<x>\u202e" + "é" * 300
    for data in (
        {"name": "", "flow": "{}"},
        {"name": nasty, "flow": "{}"},
        {"name": "ok", "flow": nasty},
        {"name": "ok", "flow": "[1, 2]"},
        {"name": "ok", "flow": json.dumps({"nodes": [{"id": "<x>", "type": "<x>"}]})},
        {"name": "ok", "flow": "x" * 600_000},
    ):
        answer = await post_form(client, listing, listing, data)
        assert 400 <= answer.status_code < 500, data["flow"][:50]
        assert "<x>" not in answer.text
    assert uuid.UUID(ws)


async def test_each_bot_page_action_writes_exactly_one_audit_entry(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner, ws, bot = await _owner_with_bot(api)
    await browser_login(client, owner.email, owner.password)
    path = f"/app/w/{ws}/bots/{bot}"
    flow = json.dumps(support_flow("hey"))
    for page, action, data, expected in (
        (f"/app/w/{ws}/bots", f"/app/w/{ws}/bots", {"name": "B", "flow": "{}"}, "bot.create"),
        (path, path, {"name": "Support bot", "enabled": "on", "flow": flow}, "bot.update"),
        (path, f"{path}/publish", {"note": "v1"}, "bot.publish"),
        (path, f"{path}/simulate", {"text": "hey"}, "bot.simulate"),
    ):
        before = len(await _audit_actions(runtime))
        response = await post_form(client, page, action, data)
        assert response.status_code in (200, 303), (action, response.text[:300])
        assert (await _audit_actions(runtime))[before:] == [expected], action
    # A refused save writes nothing (the API's savepoint is rolled back).
    before = len(await _audit_actions(runtime))
    refused = await post_form(client, path, path, {"name": "x", "flow": '{"nodes": [1]}'})
    assert refused.status_code == 422
    assert len(await _audit_actions(runtime)) == before
    before = len(await _audit_actions(runtime))
    deleted = await post_form(client, path, f"{path}/delete", {})
    assert deleted.status_code == 303 and "bot_deleted" in deleted.headers["location"]
    assert (await _audit_actions(runtime))[before:] == ["bot.delete"]
    gone = await api.http.get(f"/api/v1/workspaces/{ws}/bots/{bot}", headers=owner.headers)
    assert gone.status_code == 404
    assert (await client.get(path)).status_code == 404
