"""The superadmin's plan API: list, edit quotas, move a workspace; nobody else may."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from botplatform.models import AuditLog, Plan
from botplatform.plans.defaults import DEFAULT_PLANS, QUOTA_FIELDS
from botplatform.runtime import Runtime
from tests.conftest import Api, make_superadmin


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_migration_seeds_the_documented_plans(api: Api, runtime: Runtime) -> None:
    async with runtime.db.unit_of_work(system=True) as db:
        rows = list((await db.execute(select(Plan).order_by(Plan.position))).scalars())
    seeded = [
        {"name": p.name, "position": p.position, **{f: getattr(p, f) for f in QUOTA_FIELDS}}
        for p in rows
    ]
    assert seeded == list(DEFAULT_PLANS)


async def test_superadmin_lists_and_edits_plans(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    admin = await api.register()
    await make_superadmin(runtime, admin)
    listed = await client.get("/api/v1/admin/plans", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    assert [p["name"] for p in listed.json()["data"]] == ["starter", "pro", "enterprise"]
    assert listed.json()["data"][2]["retention_days"] is None

    edited = await client.patch(
        "/api/v1/admin/plans/pro",
        json={"channels": 12, "ai_tokens_per_month": None},
        headers=admin.headers,
    )
    assert edited.status_code == 200, edited.text
    data = edited.json()["data"]
    assert (data["channels"], data["ai_tokens_per_month"], data["members"]) == (12, None, 50)
    async with runtime.db.unit_of_work(system=True) as db:
        entry = (
            await db.execute(select(AuditLog).where(AuditLog.action == "plan.update"))
        ).scalar_one()
    assert entry.changes["channels"] == {"before": 10, "after": 12}

    missing = await client.patch("/api/v1/admin/plans/gold", json={}, headers=admin.headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "plan_not_found")
    negative = await client.patch(
        "/api/v1/admin/plans/pro", json={"channels": -1}, headers=admin.headers
    )
    assert negative.status_code == 422
    unknown = await client.patch(
        "/api/v1/admin/plans/pro", json={"name": "gold"}, headers=admin.headers
    )
    assert unknown.status_code == 422


async def test_superadmin_moves_a_workspace_to_another_plan(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    admin, owner = await api.register(), await api.register()
    await make_superadmin(runtime, admin)
    ws = await api.create_workspace(owner)
    url = f"/api/v1/admin/workspaces/{ws}/plan"
    moved = await client.put(url, json={"plan": "pro"}, headers=admin.headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"] == {"workspace_id": ws, "plan": "pro"}
    seen = await client.get(f"/api/v1/workspaces/{ws}", headers=owner.headers)
    assert seen.json()["data"]["plan"] == "pro"
    usage = await client.get(f"/api/v1/workspaces/{ws}/usage", headers=owner.headers)
    assert usage.json()["data"]["plan"] == "pro"
    async with runtime.db.unit_of_work(system=True) as db:
        entry = (
            await db.execute(select(AuditLog).where(AuditLog.action == "workspace.plan_change"))
        ).scalar_one()
    assert str(entry.workspace_id) == ws
    assert entry.changes == {"plan": {"before": "starter", "after": "pro"}}

    bad = await client.put(url, json={"plan": "gold"}, headers=admin.headers)
    assert (bad.status_code, bad.json()["error"]["code"]) == (404, "plan_not_found")
    nowhere = await client.put(
        "/api/v1/admin/workspaces/00000000-0000-0000-0000-000000000000/plan",
        json={"plan": "pro"},
        headers=admin.headers,
    )
    assert nowhere.status_code == 404


async def test_only_superadmins_may_touch_plans(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    key = (await api.create_key(owner, ws, ["workspace:read", "workspace:update"]))["key"]
    calls = [
        ("GET", "/api/v1/admin/plans", None),
        ("PATCH", "/api/v1/admin/plans/starter", {"channels": 1000}),
        ("PUT", f"/api/v1/admin/workspaces/{ws}/plan", {"plan": "enterprise"}),
    ]
    for method, url, body in calls:
        as_owner = await client.request(method, url, json=body, headers=owner.headers)
        assert (as_owner.status_code, as_owner.json()["error"]["code"]) == (403, "not_superadmin")
        as_key = await client.request(method, url, json=body, headers=bearer(key))
        assert as_key.status_code == 403
        anonymous = await client.request(method, url, json=body)
        assert anonymous.status_code == 401
    # …and not through the workspace's own endpoint either (mass assignment).
    patched = await client.patch(
        f"/api/v1/workspaces/{ws}", json={"plan": "enterprise"}, headers=owner.headers
    )
    assert patched.status_code == 422
    workspace = await client.get(f"/api/v1/workspaces/{ws}", headers=owner.headers)
    assert workspace.json()["data"]["plan"] == "starter"
    async with runtime.db.unit_of_work(system=True) as db:
        starter = await db.get(Plan, "starter")
        assert starter is not None and starter.channels == 3
