"""A broadcast to a segment: the segment's opted-in contacts, each once, with the segment's
definition kept as it was when the broadcast was created."""

from __future__ import annotations

from collections import Counter

from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.broadcast.helpers import Shop, per_recipient, shop, update_contact
from tests.conftest import Api, eventually

VIP = {"match": "all", "conditions": [{"type": "tags", "operator": "has_any", "values": ["vip"]}]}


async def _three_contacts(api: Api, s: Shop) -> bool:
    found = await api.http.get(f"/api/v1/workspaces/{s.ws}/contacts", headers=s.owner.headers)
    return len(found.json()["data"]["items"]) == 3


async def test_a_saved_segment_reaches_its_opted_in_contacts_once(
    api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    s = await shop(api, wa)
    for index, phone in enumerate(["+15557000001", "+15557000002", "+15557000003"]):
        await api.inbound_text(s.channel["id"], phone.lstrip("+"), "hi", name=f"C{index}")
    await eventually(lambda: _three_contacts(api, s))  # the inbound jobs made them
    await update_contact(runtime, s.ws, "+15557000001", tags=["vip"])
    await update_contact(runtime, s.ws, "+15557000002", tags=["vip"], opted_out=True)
    await update_contact(runtime, s.ws, "+15557000003", tags=["regular"])
    response = await api.http.post(
        f"/api/v1/workspaces/{s.ws}/segments",
        json={"name": "VIPs", "definition": VIP},
        headers=s.owner.headers,
    )
    assert response.status_code == 201, response.text
    segment_id = response.json()["data"]["id"]

    created = await s.create([], audience={"type": "segment", "segment_id": segment_id})
    # Editing the segment afterwards changes nothing for this broadcast.
    await api.http.patch(
        f"/api/v1/workspaces/{s.ws}/segments/{segment_id}",
        json={"definition": {**VIP, "conditions": [{**VIP["conditions"][0], "values": ["x"]}]}},
        headers=s.owner.headers,
    )
    await s.start(created["id"])
    done = await s.finished(created["id"])
    assert done["status"] == "completed"
    assert per_recipient(wa) == Counter({"15557000001": 1})  # the opted-out VIP never

    unknown = await api.http.post(
        s.base,
        json={
            "name": "x",
            "channel_id": s.channel["id"],
            "message": {"type": "text", "text": "hi"},
            "audience": {"type": "segment", "segment_id": "00000000-0000-4000-8000-000000000000"},
        },
        headers=s.owner.headers,
    )
    assert unknown.status_code == 404, unknown.text
