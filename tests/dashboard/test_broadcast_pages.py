"""Broadcasts over plain HTTP, on both backends: the composer without JavaScript (a template's
variables mapped to attributes, the preview, the segment's count), refusals shown with their
reason (nothing created), create + start to a segment, the broadcast's page with progress,
recipients filter, CSV and the sends-per-second data; pause, resume, cancel; a test send; and
a viewer who reads but may not act."""

from __future__ import annotations

from typing import Any

import httpx

from botplatform.sandbox import FakeGraph
from tests.conftest import Account, Api, eventually
from tests.dashboard.helpers import browser_login, csrf_of, unlabelled_controls
from tests.template.test_templates_api import TEMPLATE

CSV = (
    "phone,name,tags,order\n"
    "+15557100001,Ann0,vip,#0\n"
    "+15557100002,Ann1,vip,#1\n"
    "+15557100003,Ann2,,#2\n"
)
VIP = {"match": "all", "conditions": [{"type": "tags", "operator": "has_any", "values": ["vip"]}]}


async def _shop(api: Api, wa: FakeGraph) -> tuple[Account, str, dict[str, Any], str]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws, business_account_id=wa.waba_id)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    made = wa.templates.create(wa.waba_id, TEMPLATE)
    made.update(status="APPROVED")
    synced = await api.http.post(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}/templates/sync", headers=owner.headers
    )
    assert synced.status_code == 200, synced.text
    segment = await api.http.post(
        f"/api/v1/workspaces/{ws}/segments",
        json={"name": "VIPs", "definition": VIP},
        headers=owner.headers,
    )
    assert segment.status_code == 201, segment.text
    return owner, ws, channel, segment.json()["data"]["id"]


async def test_compose_start_follow_and_control_a_broadcast(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, channel, segment_id = await _shop(api, wa)
    imported = await api.http.post(
        f"/api/v1/workspaces/{ws}/contacts/import",
        files={"file": ("c.csv", CSV.encode(), "text/csv")},
        headers=owner.headers,
    )
    assert imported.status_code == 200, imported.text
    await browser_login(client, owner.email, owner.password)
    listing = await client.get(f"/app/w/{ws}/broadcasts")
    assert listing.status_code == 200 and "No broadcasts yet." in listing.text
    assert f'href="/app/w/{ws}/broadcasts"' in listing.text  # in the menu
    composer = await client.get(f"/app/w/{ws}/broadcasts/new")
    assert composer.status_code == 200 and unlabelled_controls(composer.text) == []
    assert "order_shipped (en_US)" in composer.text
    assert 'data-count="2"' in composer.text  # the VIP segment, live
    assert 'id="v-b_1-attribute"' in composer.text and 'id="v-b_2-default"' in composer.text
    token = csrf_of(composer.text)
    form = {
        "csrf_token": token,
        "name": "Shipping news",
        "channel_id": channel["id"],
        "audience_type": "segment",
        "segment_id": segment_id,
        "v-b_1-attribute": "name",
        "v-b_1-default": "friend",
        "v-b_2-attribute": "order",
        "v-b_2-default": "",
        "when": "now",
    }
    preview = await client.post(f"/app/w/{ws}/broadcasts/preview", data=form)
    assert "Hi friend, your order [order] has shipped." in preview.text
    refreshed = await client.post(f"/app/w/{ws}/broadcasts", data={**form, "action": "refresh"})
    assert refreshed.status_code == 200 and 'value="friend"' in refreshed.text

    refused = await client.post(
        f"/app/w/{ws}/broadcasts",
        data={**form, "action": "start", "audience_type": "list", "phones": ""},
    )
    assert refused.status_code == 422 and "needs `contact_ids` or `phones`" in refused.text
    late = await client.post(
        f"/app/w/{ws}/broadcasts",
        data={**form, "action": "start", "when": "later", "scheduled_at": "soon"},
    )
    assert late.status_code == 422 and "Give the date and time" in late.text
    assert "No broadcasts yet." in (await client.get(f"/app/w/{ws}/broadcasts")).text

    wa.fail_next(400, 131026, title="Message undeliverable")  # one recipient fails for good
    started = await client.post(f"/app/w/{ws}/broadcasts", data={**form, "action": "start"})
    assert started.status_code == 303, started.text
    url = started.headers["location"].split("?")[0]
    shown = await client.get(started.headers["location"])
    assert "Broadcast started." in shown.text and 'id="send-chart"' in shown.text
    assert unlabelled_controls(shown.text) == []

    async def done() -> str | None:
        fragment = await client.get(f"{url}/progress")
        return fragment.text if 'data-status="completed"' in fragment.text else None

    fragment = await eventually(done, timeout=30, interval=0.2)
    assert 'data-count-total="2"' in fragment and "hx-trigger" not in fragment  # polling stops
    assert 'data-count-failed="1"' in fragment and "131026: 1" in fragment  # failed by code
    sent = {item["to"]: item for item in wa.sent if item["type"] == "template"}
    [(number, item)] = sent.items()
    body = item["body"]["template"]["components"][0]["parameters"]
    index = int(number[-1]) - 1
    assert [p["text"] for p in body] == [f"Ann{index}", f"#{index}"]
    failed_number = ({"15557100001", "15557100002"} - {number}).pop()

    rate = (await client.get(f"{url}/rate")).json()
    assert rate["status"] == "completed" and sum(rate["n"]) == 1
    assert len(rate["t"]) == rate["t"][-1] - rate["t"][0] + 1  # every second, gaps as 0
    page = await client.get(url)
    assert "15557100001" in page.text and "15557100002" in page.text
    assert "15557100003" not in page.text  # not in the segment
    failed = await client.get(f"{url}?status=failed")
    assert failed_number in failed.text and number not in failed.text
    assert "Message undeliverable" in failed.text
    read_only = await client.get(f"{url}?status=queued")
    assert "No recipients with this status" in read_only.text
    csv = await client.get(f"{url}/recipients.csv")
    assert csv.status_code == 200 and csv.text.count("\n") == 3
    failed_csv = await client.get(f"{url}/recipients.csv?status=failed")
    assert failed_csv.text.count("\n") == 2 and "131026" in failed_csv.text
    assert "Shipping news" in (await client.get(f"/app/w/{ws}/broadcasts")).text

    # A finished broadcast cannot be paused: the reason is shown.
    refused_pause = await client.post(f"{url}/pause", data={"csrf_token": token})
    assert refused_pause.status_code == 409
    assert "A completed broadcast cannot be paused." in refused_pause.text

    # A draft: a test send, then a scheduled start, pause, resume, cancel.
    draft = await client.post(
        f"/app/w/{ws}/broadcasts",
        data={**form, "action": "draft", "name": "Later", "audience_type": "list",
              "phones": "+15557100009, 15557100008", "quiet": "1", "quiet_start": "22:00",
              "quiet_end": "07:30"},
    )  # fmt: skip
    assert draft.status_code == 303
    draft_url = draft.headers["location"].split("?")[0]
    draft_page = await client.get(draft_url)
    assert "quiet 22:00" in draft_page.text and "07:30 local" in draft_page.text
    assert "audience: list" in draft_page.text
    tested = await client.post(f"{draft_url}/test-send", data={"csrf_token": token, "to": "x"})
    assert tested.status_code == 422 and "Give one phone number" in tested.text
    tested = await client.post(
        f"{draft_url}/test-send", data={"csrf_token": token, "to": "+15557100003"}
    )
    assert tested.status_code == 303

    async def test_arrived() -> bool:
        return any(i["to"] == "15557100003" for i in wa.sent if i["type"] == "template")

    await eventually(test_arrived, timeout=15, interval=0.2)
    # The workspace's timezone: the time given is read there, and shown there.
    zone = await api.http.put(
        f"/api/v1/workspaces/{ws}/business-hours",
        json={"timezone": "Europe/Paris"},
        headers=owner.headers,
    )
    assert zone.status_code == 200, zone.text
    later = await client.post(
        f"/app/w/{ws}/broadcasts",
        data={**form, "action": "start", "name": "Paris time", "when": "later",
              "scheduled_at": "2099-01-01T09:00"},
    )  # fmt: skip
    assert later.status_code == 303
    later_page = await client.get(later.headers["location"])
    assert "scheduled 2099-01-01 09:00 (Europe/Paris)" in later_page.text
    later_id = later.headers["location"].split("?")[0].rsplit("/", 1)[1]
    stored = await api.http.get(
        f"/api/v1/workspaces/{ws}/broadcasts/{later_id}", headers=owner.headers
    )
    assert stored.json()["data"]["scheduled_at"].startswith("2099-01-01T08:00:00")
    scheduled = await client.post(
        f"{draft_url}/start",
        data={"csrf_token": token, "when": "later", "scheduled_at": "2099-01-01T09:00"},
    )
    assert scheduled.status_code == 303 and "broadcast_scheduled" in scheduled.headers["location"]
    for action, status in (("pause", "paused"), ("resume", "scheduled"), ("cancel", "cancelled")):
        answer = await client.post(f"{draft_url}/{action}", data={"csrf_token": token})
        assert answer.status_code == 303, answer.text
        assert f'data-status="{status}"' in (await client.get(f"{draft_url}/progress")).text

    no_csrf = await client.post(f"{draft_url}/pause", data={})
    assert no_csrf.status_code == 403

    viewer = await api.add_member(owner, ws, "viewer")
    other = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with other:
        await browser_login(other, viewer.email, viewer.password)
        seen = await other.get(url)
        assert seen.status_code == 200 and "Test send" not in seen.text
        assert (await other.get(f"/app/w/{ws}/broadcasts/new")).status_code == 403
        refused_cancel = await other.post(f"{url}/cancel", data={"csrf_token": csrf_of(seen.text)})
        assert refused_cancel.status_code == 403
