"""The workspace's Usage page and the superadmin's Plans page and plan switcher: they render,
every control is labelled, changes go through the API's rules, and others are refused."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy import select

from botplatform.models import Plan, Workspace
from botplatform.runtime import Runtime
from tests.conftest import Api, make_superadmin, set_quota
from tests.dashboard.helpers import browser_login, post_form, unlabelled_controls


async def test_usage_page_shows_each_quota_with_a_meter(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.create_channel(owner, ws)
    await set_quota(runtime, "starter", bots=None)
    await browser_login(client, owner.email, owner.password)
    page = await client.get(f"/app/w/{ws}/usage")
    assert page.status_code == 200, page.text
    assert "Plan <strong>starter</strong>" in page.text
    assert re.search(r'<meter aria-labelledby="q-channels"[^>]* max="3"[^>]* value="1"', page.text)
    bots_row = page.text.split('id="q-bots"', 1)[1].split("</tr>", 1)[0]
    assert "unlimited" in bots_row and "<meter" not in bots_row
    assert "never refused" in page.text
    assert unlabelled_controls(page.text) == []
    assert f'href="/app/w/{ws}/usage"' in page.text  # in the workspace's navigation
    settings = await client.get(f"/app/w/{ws}/settings")
    assert "usage are not available" not in settings.text
    assert f'href="/app/w/{ws}/usage"' in settings.text


async def test_usage_page_is_hidden_and_refused_without_billing_read(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    viewer = await api.add_member(owner, ws, "viewer")
    other = await api.create_workspace(await api.register(), "Elsewhere")
    await browser_login(client, viewer.email, viewer.password)
    settings = await client.get(f"/app/w/{ws}/settings")
    assert f'href="/app/w/{ws}/usage"' not in settings.text
    refused = await client.get(f"/app/w/{ws}/usage")
    assert refused.status_code == 403
    assert (await client.get(f"/app/w/{other}/usage")).status_code == 404


async def test_superadmin_edits_a_plan_and_moves_a_workspace(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    admin, owner = await api.register(), await api.register()
    await make_superadmin(runtime, admin)
    ws = await api.create_workspace(owner, "Tenant One")
    await browser_login(client, admin.email, admin.password)

    plans = await client.get("/admin/plans")
    assert plans.status_code == 200
    assert "not available" not in plans.text
    assert 'id="p-pro-channels"' in plans.text and unlabelled_controls(plans.text) == []
    fields = {
        "messages_per_month": "5000",
        "channels": "7",
        "members": "",  # empty: unlimited
        "bots": "5",
        "broadcasts_per_month": "20",
        "recipients_per_broadcast": "1000",
        "recipients_per_month": "5000",
        "ai_tokens_per_month": "200000",
        "api_requests_per_minute": "600",
        "retention_days": "90",
    }
    saved = await post_form(client, "/admin/plans", "/admin/plans/starter", fields)
    assert saved.headers["location"] == "/admin/plans?notice=plan_saved"
    async with runtime.db.unit_of_work(system=True) as db:
        starter = await db.get(Plan, "starter")
        assert starter is not None
        assert (starter.messages_per_month, starter.channels, starter.members) == (5000, 7, None)
    bad = await post_form(
        client, "/admin/plans", "/admin/plans/starter", {**fields, "channels": "-2"}
    )
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text

    listing = await client.get("/admin/workspaces")
    assert unlabelled_controls(listing.text) == []
    assert f'<label for="plan-{ws}" class="visually-hidden">Plan of Tenant One</label>' in (
        listing.text
    )
    moved = await post_form(
        client, "/admin/workspaces", f"/admin/workspaces/{ws}/plan", {"plan": "enterprise"}
    )
    assert moved.headers["location"] == "/admin/workspaces?notice=plan_changed"
    unknown = await post_form(
        client, "/admin/workspaces", f"/admin/workspaces/{ws}/plan", {"plan": "gold"}
    )
    assert unknown.status_code == 404 and "No plan by that name" in unknown.text
    async with runtime.db.unit_of_work(system=True) as db:
        workspace = (
            await db.execute(select(Workspace).where(Workspace.name == "Tenant One"))
        ).scalar_one()
    assert workspace.plan == "enterprise"


async def test_plans_pages_refuse_non_superadmins(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    assert (await client.get("/admin/plans")).status_code == 403
    # A forged post (with a valid token from a page the owner may open) changes nothing.
    refused = await post_form(
        client, f"/app/w/{ws}/settings", "/admin/plans/starter", {"channels": "999"}
    )
    assert refused.status_code == 403
    moved = await post_form(
        client, f"/app/w/{ws}/settings", f"/admin/workspaces/{ws}/plan", {"plan": "enterprise"}
    )
    assert moved.status_code == 403
    async with runtime.db.unit_of_work(system=True) as db:
        starter = await db.get(Plan, "starter")
        workspace = await db.get(Workspace, uuid.UUID(ws))
    assert starter is not None and starter.channels == 3
    assert workspace is not None and workspace.plan == "starter"
