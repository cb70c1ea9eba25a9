"""Who may read and manage segments, and import contacts (the one role table)."""

from __future__ import annotations

import httpx

from tests.conftest import Api

DEFINITION = {"conditions": [{"type": "tags", "operator": "has_any", "values": ["vip"]}]}


async def test_reading_needs_contacts_read_and_managing_needs_broadcasts_send(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    base = f"/api/v1/workspaces/{ws}"
    created = await client.post(
        f"{base}/segments", json={"name": "VIPs", "definition": DEFINITION}, headers=owner.headers
    )
    assert created.status_code == 201
    segment = f"{base}/segments/{created.json()['data']['id']}"
    duplicate = await client.post(
        f"{base}/segments", json={"name": "VIPs", "definition": {}}, headers=owner.headers
    )
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "segment_exists"
    csv = {"file": ("c.csv", b"phone\n+15550005001\n", "text/csv")}
    expectations = {  # role: (may manage segments, may import contacts)
        "viewer": (False, False),
        "analyst": (False, False),
        "agent": (False, True),
        "developer": (False, False),
        "manager": (True, True),
        "admin": (True, True),
    }
    for role, (manages, imports) in expectations.items():
        member = await api.add_member(owner, ws, role)
        for url in (f"{base}/segments", segment, f"{segment}/count", f"{segment}/contacts"):
            read = await client.get(url, headers=member.headers)
            assert read.status_code == 200, (role, url)
        preview = await client.post(
            f"{base}/segments/preview-count", json=DEFINITION, headers=member.headers
        )
        assert preview.status_code == 200, role
        made = await client.post(
            f"{base}/segments",
            json={"name": f"by {role}", "definition": DEFINITION},
            headers=member.headers,
        )
        assert made.status_code == (201 if manages else 403), (role, made.text)
        changed = await client.patch(segment, json={"name": "VIPs"}, headers=member.headers)
        assert changed.status_code == (200 if manages else 403), role
        imported = await client.post(f"{base}/contacts/import", files=csv, headers=member.headers)
        assert imported.status_code == (200 if imports else 403), (role, imported.text)
    deleted = await client.delete(segment, headers=owner.headers)
    assert deleted.status_code == 200
    assert (await client.get(segment, headers=owner.headers)).status_code == 404
    audit = await client.get(f"{base}/audit-logs", headers=owner.headers)
    for action in ("segment.create", "segment.delete", "contact.import"):
        assert action in audit.text


async def test_another_workspace_can_neither_read_nor_count_a_segment(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner, stranger = await api.register(), await api.register()
    ws, other_ws = await api.create_workspace(owner), await api.create_workspace(stranger)
    created = await client.post(
        f"/api/v1/workspaces/{ws}/segments",
        json={"name": "VIPs", "definition": DEFINITION},
        headers=owner.headers,
    )
    segment_id = created.json()["data"]["id"]
    for base in (f"/api/v1/workspaces/{ws}", f"/api/v1/workspaces/{other_ws}"):
        for suffix in ("", "/count", "/contacts"):
            response = await client.get(
                f"{base}/segments/{segment_id}{suffix}", headers=stranger.headers
            )
            assert response.status_code == 404, (base, suffix, response.text)
    listed = await client.get(f"/api/v1/workspaces/{other_ws}/segments", headers=stranger.headers)
    assert listed.json()["data"]["items"] == []
