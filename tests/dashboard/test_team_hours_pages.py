"""Teams and business hours over plain HTTP, on both backends: create/edit/delete a team with
members, set the weekly hours (ranges typed per day), the API's refusals shown in the page,
readers see, managers change, CSRF, and other workspaces' ids."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy import func, select

from botplatform.models import AuditLog
from botplatform.runtime import Runtime
from tests.conftest import Api
from tests.dashboard.helpers import browser_login, csrf_of, unlabelled_controls


async def _audit_count(runtime: Runtime, ws: str, action: str) -> int:
    async with runtime.db.unit_of_work(system=True) as db:
        statement = select(func.count()).where(
            AuditLog.workspace_id == uuid.UUID(ws), AuditLog.action == action
        )
        return int((await db.execute(statement)).scalar_one())


async def test_teams_are_created_changed_and_deleted(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner)
    agent = await api.add_member(owner, ws, "agent")
    await browser_login(client, owner.email, owner.password)
    page = await client.get(f"/app/w/{ws}/teams")
    assert page.status_code == 200 and "No teams yet" in page.text
    assert f'href="/app/w/{ws}/teams"' in page.text
    assert unlabelled_controls(page.text) == []
    token = csrf_of(page.text)

    created = await client.post(
        f"/app/w/{ws}/teams",
        data={"name": "Billing <team>", "member_ids": [str(agent.user_id)], "csrf_token": token},
    )
    assert created.status_code == 303
    listing = await client.get(f"/app/w/{ws}/teams")
    assert "Billing &lt;team&gt;" in listing.text
    assert f'value="{agent.user_id}" checked' in listing.text
    assert unlabelled_controls(listing.text) == []
    team_id = re.search(rf"/app/w/{ws}/teams/([0-9a-f-]{{36}})", listing.text)
    assert team_id
    base = f"/app/w/{ws}/teams/{team_id.group(1)}"

    for data in (
        {"name": ""},
        {"name": "x", "member_ids": ["not-an-id"]},
        {"name": "x", "member_ids": [str(uuid.uuid4())]},  # not a member: the API refuses
    ):
        answer = await client.post(f"/app/w/{ws}/teams", data={**data, "csrf_token": token})
        assert 400 <= answer.status_code < 500, (data, answer.status_code)
        assert 'class="alert alert-error"' in answer.text
    edited = await client.post(
        base, data={"name": "Billing", "description": "Refunds", "csrf_token": token}
    )
    assert edited.status_code == 303
    after = (await client.get(f"/app/w/{ws}/teams")).text
    assert "Refunds" in after and "No members yet" in after
    refused = await client.post(base, data={"name": "", "csrf_token": token})
    assert refused.status_code == 422
    assert (await client.post(f"{base}/delete", data={})).status_code == 403  # no token
    deleted = await client.post(f"{base}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert "No teams yet" in (await client.get(f"/app/w/{ws}/teams")).text
    assert (await client.post(f"{base}/delete", data={"csrf_token": token})).status_code == 404
    for action in ("team.create", "team.update", "team.delete"):
        assert await _audit_count(runtime, ws, action) == 1, action

    # An agent may read members (so teams) but not change them.
    client.cookies.clear()
    await browser_login(client, agent.email, agent.password)
    seen = await client.get(f"/app/w/{ws}/teams")
    assert seen.status_code == 200 and "Create team" not in seen.text
    answer = await client.post(
        f"/app/w/{ws}/teams", data={"name": "Mine", "csrf_token": csrf_of(seen.text)}
    )
    assert answer.status_code == 403


async def test_business_hours_are_set_per_day(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    page = await client.get(f"/app/w/{ws}/business-hours")
    assert page.status_code == 200 and unlabelled_controls(page.text) == []
    token = csrf_of(page.text)
    saved = await client.post(
        f"/app/w/{ws}/business-hours",
        data={
            "timezone": "Europe/Paris",
            "mon": "09:00-12:00, 13:00-17:30",
            "sat": "10:00 \u2013 24:00",  # an en dash works too
            "csrf_token": token,
        },
    )
    assert saved.status_code == 303
    api_view = await client.get(f"/api/v1/workspaces/{ws}/business-hours", headers=owner.headers)
    data = api_view.json()["data"]
    assert data["timezone"] == "Europe/Paris"
    assert data["days"]["mon"] == [
        {"start": "09:00", "end": "12:00"},
        {"start": "13:00", "end": "17:30"},
    ]
    assert data["days"]["sat"] == [{"start": "10:00", "end": "24:00"}]
    shown = await client.get(f"/app/w/{ws}/business-hours")
    assert 'value="09:00-12:00, 13:00-17:30"' in shown.text
    for form, text in (
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"timezone": "UTC", "tue": "nine to five"}, "is not a range"),
        ({"timezone": "UTC", "wed": "17:00-09:00"}, "must be after"),
        ({"timezone": "UTC", "thu": "25:00-26:00"}, 'class="error"'),
        ({"timezone": "<b>x</b>"}, "&lt;b&gt;"),
    ):
        answer = await client.post(
            f"/app/w/{ws}/business-hours", data={**form, "csrf_token": token}
        )
        assert answer.status_code == 422, form
        assert text in answer.text, (form, answer.text[-2000:])
    assert await _audit_count(runtime, ws, "business_hours.update") == 1
    assert (
        await client.post(f"/app/w/{ws}/business-hours", data={"timezone": "UTC"})
    ).status_code == 403

    agent = await api.add_member(owner, ws, "agent")
    client.cookies.clear()
    await browser_login(client, agent.email, agent.password)
    seen = await client.get(f"/app/w/{ws}/business-hours")
    assert (
        seen.status_code == 200
        and "13:00-17:30" in seen.text
        and '<form method="post" action="/app/w/' + ws + '/business-hours"' not in seen.text
    )
    answer = await client.post(
        f"/app/w/{ws}/business-hours",
        data={"timezone": "UTC", "csrf_token": csrf_of(seen.text)},
    )
    assert answer.status_code == 403
    other = await api.create_workspace(owner)
    assert (await client.get(f"/app/w/{other}/business-hours")).status_code in (403, 404)
