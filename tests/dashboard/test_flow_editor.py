"""The flow editor's forms over plain HTTP, on both backends: every node, trigger and rule kind
goes through the forms and comes back equal (and saved equal); fields, port targets, options,
rules and triggers are edited, added and removed by form; the API's problems show in the card
of the node or trigger they name; JSON typed in the advanced view wins over the forms; and JSON
that does not parse leaves the forms and the nodes list on the saved draft."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import httpx

from tests.conftest import Account, Api
from tests.dashboard.editor_flows import docs_flow, every_kind_flow
from tests.dashboard.helpers import browser_login, form_fields, unlabelled_controls


async def _bot(api: Api, flow: dict[str, Any]) -> tuple[Account, str, str]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/bots",
        json={"name": "Editor bot", "flow": flow},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return owner, ws, str(response.json()["data"]["id"])


def _drawn(html: str) -> dict[str, Any]:
    """The flow the page's forms were drawn from."""
    found = re.search(r'<input type="hidden" name="flow_base" value="([^"]*)"', html)
    assert found, "no flow_base on the page"
    flow: dict[str, Any] = json.loads(unescape(found.group(1)))
    return flow


async def _submit(
    client: httpx.AsyncClient, url: str, html: str, op: str, **changes: str
) -> httpx.Response:
    fields = {**form_fields(html, "flow-form"), **changes, "op": op}
    return await client.post(url, data=fields)


async def _saved_flow(api: Api, owner: Account, ws: str, bot: str) -> dict[str, Any]:
    response = await api.http.get(f"/api/v1/workspaces/{ws}/bots/{bot}", headers=owner.headers)
    flow: dict[str, Any] = response.json()["data"]["flow"]
    return flow


async def test_every_kind_goes_through_the_forms_unchanged(
    client: httpx.AsyncClient, api: Api
) -> None:
    flow = every_kind_flow()
    owner, ws, bot = await _bot(api, flow)
    await browser_login(client, owner.email, owner.password)
    url = f"/app/w/{ws}/bots/{bot}"
    page = await client.get(url)
    assert page.status_code == 200
    assert unlabelled_controls(page.text) == []
    html = page.text
    # A card per node with fields suited to its type, a select per output port.
    for node in flow["nodes"]:
        assert f'data-node="{node["id"]}"' in html
    assert 'name="n0.b.1.title" type="text" value="Shop"' in html
    assert 'name="n3.s.0.r.0.description" type="text" value="Warm"' in html
    assert 'name="n7.r.3.days.sat" checked' in html
    assert 'name="n7.r.4.hours.sat.closes" value="14:00"' in html
    assert re.search(r'name="n9.headers"[^>]*>X-Key: abc</textarea>', html)
    assert re.search(r'name="n0.po.0">\s*<option value="">[^<]*</option>', html)
    assert 'name="t5.min_confidence" type="number" value="0.7"' in html

    applied = await _submit(client, url, html, "update")
    assert applied.status_code == 200, applied.text
    assert _drawn(applied.text) == flow
    saved = await _submit(client, url, applied.text, "save")
    assert saved.status_code == 303, saved.text
    assert await _saved_flow(api, owner, ws, bot) == flow


async def test_the_docs_flow_is_built_with_forms(client: httpx.AsyncClient, api: Api) -> None:
    owner, ws, bot = await _bot(api, {"triggers": [], "nodes": [], "edges": []})
    await browser_login(client, owner.email, owner.password)
    url = f"/app/w/{ws}/bots/{bot}"
    html = (await client.get(url)).text
    assert "No nodes yet." in html

    # Three nodes, each added after the previous one's port.
    page = await _submit(client, url, html, "add_node", new_type="send_buttons", new_id="menu")
    assert page.status_code == 200 and "Not saved yet" in page.text
    page = await _submit(
        client,
        url,
        page.text,
        "add_node",
        **{
            "new_type": "ask",
            "new_id": "ask",
            "new_from": "n0.po.0",
            "n0.text": "Hi {{contact.name}}!",
            "n0.b.0.id": "sales",
            "n0.b.0.title": "Sales",
        },
    )
    drawn = _drawn(page.text)
    # The button was renamed in the same submission: its edge follows it.
    assert drawn["edges"] == [{"from": "menu", "to": "ask", "port": "sales"}]
    page = await _submit(
        client,
        url,
        page.text,
        "add_node",
        **{
            "new_type": "handoff",
            "new_id": "agent",
            "new_from": "n1.port.next",
            "n1.question": "Your email?",
            "n1.attribute": "email",
            "n1.validation": "email",
        },
    )
    page = await _submit(
        client, url, page.text, "add_trigger", new_trigger="keyword", new_trigger_node="menu"
    )
    page = await _submit(
        client,
        url,
        page.text,
        "save",
        **{"t0.keywords": "hi", "n2.message": "An agent will write soon."},
    )
    assert page.status_code == 303, page.text
    saved = await _saved_flow(api, owner, ws, bot)
    assert saved == docs_flow()


async def test_options_rules_and_triggers_are_added_and_removed(
    client: httpx.AsyncClient, api: Api
) -> None:
    flow = every_kind_flow()
    owner, ws, bot = await _bot(api, flow)
    await browser_login(client, owner.email, owner.password)
    url = f"/app/w/{ws}/bots/{bot}"
    html = (await client.get(url)).text

    page = await _submit(client, url, html, "add_option:0")
    assert _drawn(page.text)["nodes"][0]["buttons"][2] == {"id": "option_1", "title": ""}
    page = await _submit(client, url, page.text, "add_option:0")
    assert page.status_code == 422 and "at most 3 buttons" in page.text
    # Removing the "shop" button drops its edge too.
    page = await _submit(client, url, page.text, "remove_option:0:1")
    drawn = _drawn(page.text)
    assert [b["id"] for b in drawn["nodes"][0]["buttons"]] == ["sales", "option_1"]
    assert not [e for e in drawn["edges"] if e["from"] == "menu" and e["port"] == "shop"]

    page = await _submit(client, url, page.text, "add_row:3:0")
    page = await _submit(client, url, page.text, "add_section:3")
    sections = _drawn(page.text)["nodes"][3]["sections"]
    assert [len(s["rows"]) for s in sections] == [3, 1]
    page = await _submit(client, url, page.text, "remove_row:3:0:0")
    drawn = _drawn(page.text)
    assert drawn["nodes"][3]["sections"][0]["rows"][0]["id"] == "sandals"
    assert not [e for e in drawn["edges"] if e.get("port") == "boots"]
    page = await _submit(client, url, page.text, "remove_section:3:1")
    assert len(_drawn(page.text)["nodes"][3]["sections"]) == 1

    page = await _submit(client, url, page.text, "add_rule:7", **{"n7.new_rule": "time_of_day"})
    rules = _drawn(page.text)["nodes"][7]["rules"]
    assert rules[-1]["kind"] == "time_of_day" and len(rules) == 6
    page = await _submit(
        client,
        url,
        page.text,
        "remove_rule:7:0",
        **{"n7.r.5.from": "08:30", "n7.r.5.days.sun": "", "n7.match": "all"},
    )
    check = _drawn(page.text)["nodes"][7]
    assert check["match"] == "all" and len(check["rules"]) == 5
    assert check["rules"][-1]["from"] == "08:30"
    assert "sun" not in check["rules"][-1]["days"]

    # A port is pointed elsewhere, a trigger removed, a node renamed: its edges follow.
    page = await _submit(
        client,
        url,
        page.text,
        "remove_trigger:2",
        **{"n0.port.invalid": "done", "n12.id": "human"},
    )
    drawn = _drawn(page.text)
    assert {"from": "menu", "to": "done", "port": "invalid"} in drawn["edges"]
    assert "ai" not in {t["node"] for t in drawn["triggers"]}
    assert {"from": "check", "to": "human", "port": "false"} in drawn["edges"]
    assert not [e for e in drawn["edges"] if "agent" in (e["from"], e["to"])]

    # Removing a node drops its edges; a trigger that started it is left without a node.
    page = await _submit(client, url, page.text, "remove_node:0")
    drawn = _drawn(page.text)
    assert "menu" not in {n["id"] for n in drawn["nodes"]}
    assert not [e for e in drawn["edges"] if "menu" in (e["from"], e["to"])]
    assert drawn["triggers"][0]["node"] == ""
    assert (await _saved_flow(api, owner, ws, bot)) == flow  # nothing saved along the way

    page = await _submit(client, url, page.text, "explode:1")
    assert page.status_code == 422 and "Unknown editing action" in page.text


async def test_problems_show_in_the_card_of_their_node_and_trigger(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner, ws, bot = await _bot(api, docs_flow())
    await browser_login(client, owner.email, owner.password)
    url = f"/app/w/{ws}/bots/{bot}"
    html = (await client.get(url)).text
    page = await _submit(
        client,
        url,
        html,
        "save",
        **{"n1.question": "", "n1.attribute": "e mail", "t0.keywords": "", "n0.po.0": ""},
    )
    assert page.status_code == 422, page.text
    card = re.search(
        r'<fieldset class="card node-card has-error" id="n1".*?Remove node', page.text, re.S
    )
    assert card, "the ask node's card is not marked"
    assert "needs `question`" in card.group(0)
    assert 'aria-invalid="true"' in card.group(0)
    trigger = re.search(
        r'<fieldset class="card trigger-card has-error" id="t0".*?</fieldset>', page.text, re.S
    )
    assert trigger and "needs `keywords`" in trigger.group(0)
    # The unreachable ask node is named in its card; what was typed is kept, unsaved.
    assert "cannot be reached" in card.group(0)
    assert _drawn(page.text)["nodes"][1]["attribute"] == "e mail"
    assert await _saved_flow(api, owner, ws, bot) == docs_flow()


async def test_json_view_wins_and_malformed_json_keeps_the_saved_draft(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner, ws, bot = await _bot(api, docs_flow())
    await browser_login(client, owner.email, owner.password)
    url = f"/app/w/{ws}/bots/{bot}"
    html = (await client.get(url)).text
    changed = docs_flow()
    changed["nodes"][2]["message"] = "Typed in the JSON view"
    page = await _submit(client, url, html, "update", flow=json.dumps(changed))
    assert _drawn(page.text) == changed
    assert 'value="Typed in the JSON view"' not in page.text  # a textarea shows it
    assert ">Typed in the JSON view</textarea>" in page.text

    broken = '{"triggers": [], "nodes": [ {"id": "x"'
    page = await _submit(client, url, html, "save", flow=broken)
    assert page.status_code == 422
    assert "Not valid JSON" in page.text
    assert "Showing the saved draft (revision 1)" in page.text
    assert 'id="node-menu"' in page.text and 'id="node-agent"' in page.text  # the nodes list
    assert _drawn(page.text) == docs_flow()  # the forms
    assert broken in unescape(page.text)  # what was typed, to fix it
    assert '<details class="advanced field has-error" id="flow-json" open>' in page.text
    assert await _saved_flow(api, owner, ws, bot) == docs_flow()


async def test_a_flow_of_many_fields_goes_through_the_forms(
    client: httpx.AsyncClient, api: Api
) -> None:
    """Conditions of many business-hours rules: more form fields than the form parser's
    default limit of 1,000."""
    rule = {"kind": "business_hours", "hours": {"mon": ["09:00", "17:00"]}}
    nodes = [{"id": f"c{i}", "type": "condition", "rules": [rule] * 13} for i in range(5)]
    edges = [{"from": f"c{i}", "to": f"c{i + 1}", "port": "true"} for i in range(4)]
    flow = {"triggers": [{"type": "any_message", "node": "c0"}], "nodes": nodes, "edges": edges}
    owner, ws, bot = await _bot(api, flow)
    await browser_login(client, owner.email, owner.password)
    url = f"/app/w/{ws}/bots/{bot}"
    html = (await client.get(url)).text
    assert len(form_fields(html, "flow-form")) > 1000
    page = await _submit(
        client,
        url,
        html,
        "save",
        **{"n4.r.12.hours.tue.opens": "10:00", "n4.r.12.hours.tue.closes": "12:00"},
    )
    assert page.status_code == 303, page.text[:500]
    saved = await _saved_flow(api, owner, ws, bot)
    assert saved["nodes"][4]["rules"][12]["hours"]["tue"] == ["10:00", "12:00"]
    assert saved["nodes"][:4] == nodes[:4] and saved["edges"] == edges
