"""The automation rule pages over plain HTTP, on both backends: a rule written as JSON in the
dashboard runs on a real WhatsApp message and its run shows; the API's validation errors are
shown per field; edit, enable/disable, delete; readers see, managers change; CSRF; other
workspaces' ids; bad input answered in the page, never a 500."""

from __future__ import annotations

import json
import re
import uuid

import httpx
from sqlalchemy import func, select

from botplatform.models import AuditLog
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import Api, eventually
from tests.dashboard.conftest import unique_phone
from tests.dashboard.helpers import browser_login, csrf_of, unlabelled_controls

CONDITIONS = {"all": [{"type": "message_content", "operator": "contains", "value": "refund"}]}
ACTIONS = [{"type": "add_label", "labels": ["billing"]}]


async def _audit_count(runtime: Runtime, ws: str, action: str) -> int:
    async with runtime.db.unit_of_work(system=True) as db:
        statement = select(func.count()).where(
            AuditLog.workspace_id == uuid.UUID(ws), AuditLog.action == action
        )
        return int((await db.execute(statement)).scalar_one())


def _rule_form(token: str, **overrides: object) -> dict[str, object]:
    return {
        "name": "Refunds to billing",
        "description": "",
        "event": "message.received",
        "enabled": "on",
        "position": "10",
        "conditions": json.dumps(CONDITIONS),
        "actions": json.dumps(ACTIONS),
        "csrf_token": token,
        **overrides,
    }


async def test_a_rule_written_in_the_dashboard_runs_and_can_be_changed(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await browser_login(client, owner.email, owner.password)
    listing = await client.get(f"/app/w/{ws}/automations")
    assert listing.status_code == 200 and "No automation rules yet" in listing.text
    assert f'href="/app/w/{ws}/automations"' in listing.text  # in the menu
    new = await client.get(f"/app/w/{ws}/automations/new")
    assert new.status_code == 200 and unlabelled_controls(new.text) == []
    token = csrf_of(new.text)

    created = await client.post(f"/app/w/{ws}/automations", data=_rule_form(token))
    assert created.status_code == 303, created.text
    rule_url = created.headers["location"].split("?")[0]
    assert await _audit_count(runtime, ws, "automation.create") == 1
    shown = await client.get(created.headers["location"])
    assert "Automation rule created" in shown.text and "refund" in shown.text
    assert unlabelled_controls(shown.text) == []

    # A real message matching the rule: the run shows on the rule's page.
    await wa.post_inbound_text(unique_phone(), "I want a refund please", "Ann Customer")

    async def ran() -> str | None:
        page = await client.get(f"{rule_url}?matched=yes")
        return page.text if "add_label: succeeded" in page.text else None

    runs = await eventually(ran)
    assert "message.received" in runs
    assert "No runs yet" in (await client.get(f"{rule_url}?matched=no")).text
    stale = await client.get(f"{rule_url}?cursor=garbage&matched=maybe")
    assert stale.status_code == 200 and "no longer valid" in stale.text

    # Edit: new name, conditions removed (empty box) — the API's partial update.
    edited = await client.post(
        rule_url, data=_rule_form(token, name="All to billing", conditions="")
    )
    assert edited.status_code == 303
    after = (await client.get(rule_url)).text
    assert "All to billing" in after and "refund" not in after
    assert await _audit_count(runtime, ws, "automation.update") == 1

    off = await client.post(
        f"{rule_url}/enabled", data={"enabled": "false", "back": "list", "csrf_token": token}
    )
    assert off.status_code == 303 and off.headers["location"].startswith(
        f"/app/w/{ws}/automations?"
    )
    assert "disabled" in (await client.get(f"/app/w/{ws}/automations")).text
    on = await client.post(f"{rule_url}/enabled", data={"enabled": "true", "csrf_token": token})
    assert on.status_code == 303
    assert (
        await client.post(f"{rule_url}/enabled", data={"enabled": "x", "csrf_token": token})
    ).status_code == 422
    assert await _audit_count(runtime, ws, "automation.update") == 3

    # Without the token nothing changes.
    assert (await client.post(f"{rule_url}/delete", data={})).status_code == 403
    deleted = await client.post(f"{rule_url}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert "deleted" in (await client.get(deleted.headers["location"])).text
    assert (await client.get(rule_url)).status_code == 404
    assert await _audit_count(runtime, ws, "automation.delete") == 1


async def test_the_apis_validation_errors_are_shown_per_field(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    token = csrf_of((await client.get(f"/app/w/{ws}/automations/new")).text)
    cases = (
        ({"conditions": "{not json"}, "conditions</code>: not valid JSON"),
        ({"actions": ""}, "actions</code>: give at least one action"),
        ({"actions": json.dumps([{"type": "explode"}])}, "actions.0"),
        (
            {"actions": json.dumps([{"type": "assign_agent", "user_id": str(uuid.uuid4())}])},
            "actions.0.user_id",
        ),
        ({"event": "nothing.happened"}, "event</code>"),
        ({"name": ""}, "name</code>"),
        ({"position": "-3"}, "position</code>"),
        ({"conditions": json.dumps({"type": "regex_that_does_not_exist"})}, "conditions"),
        ({"conditions": "x" * 20_001}, "at most 20,000 characters"),
    )
    for override, expected in cases:
        answer = await client.post(f"/app/w/{ws}/automations", data=_rule_form(token, **override))
        assert answer.status_code == 422, (override, answer.status_code)
        assert expected in answer.text, (override, answer.text[-3000:])
        # What was typed stays in the form to be fixed (escaped).
        assert 'id="rule-problems"' in answer.text
    xss = await client.post(
        f"/app/w/{ws}/automations", data=_rule_form(token, conditions="<script>alert(1)</script>")
    )
    assert xss.status_code == 422 and "<script>alert" not in xss.text
    assert "&lt;script&gt;" in xss.text
    assert await _audit_count(runtime, ws, "automation.create") == 0

    # An edit that the API refuses leaves the rule as it was.
    created = await client.post(f"/app/w/{ws}/automations", data=_rule_form(token))
    rule_url = created.headers["location"].split("?")[0]
    refused = await client.post(
        rule_url,
        data=_rule_form(
            token,
            name="Changed",
            actions=json.dumps([{"type": "assign_team", "team_id": str(uuid.uuid4())}]),
        ),
    )
    assert refused.status_code == 422 and "no such team" in refused.text
    assert "Refunds to billing" in (await client.get(rule_url)).text
    assert (await client.get(f"/app/w/{ws}/automations/not-an-id")).status_code == 404


async def test_readers_see_rules_and_only_managers_change_them(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/automations",
        json={"name": "Greeter", "event": "conversation.created", "actions": ACTIONS},
        headers=owner.headers,
    )
    rule_id = response.json()["data"]["id"]
    agent = await api.add_member(owner, ws, "agent")
    await browser_login(client, agent.email, agent.password)
    listing = await client.get(f"/app/w/{ws}/automations")
    assert listing.status_code == 200 and "Greeter" in listing.text
    assert "New rule" not in listing.text and ">Disable" not in listing.text
    rule = await client.get(f"/app/w/{ws}/automations/{rule_id}")
    assert rule.status_code == 200 and "add_label" in rule.text
    assert "<textarea" not in rule.text and "Delete rule" not in rule.text
    assert (await client.get(f"/app/w/{ws}/automations/new")).status_code == 403
    token = csrf_of(rule.text)
    for path, data in (
        ("automations", _rule_form(token)),
        (f"automations/{rule_id}", _rule_form(token)),
        (f"automations/{rule_id}/enabled", {"enabled": "false", "csrf_token": token}),
        (f"automations/{rule_id}/delete", {"csrf_token": token}),
    ):
        refused = await client.post(f"/app/w/{ws}/{path}", data=data)
        assert refused.status_code == 403, path

    client.cookies.clear()
    stranger = await api.register()
    other = await api.create_workspace(stranger)
    await browser_login(client, stranger.email, stranger.password)
    assert (await client.get(f"/app/w/{other}/automations/{rule_id}")).status_code == 404
    found = re.search("Greeter", (await client.get(f"/app/w/{other}/automations")).text)
    assert found is None
