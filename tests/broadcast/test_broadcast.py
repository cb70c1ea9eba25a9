"""Broadcasts through the API against the fake Graph API, on both backends: each recipient
gets the message exactly once, opted-out contacts are skipped, the provider never sees more
than the channel's rate, the tier makes the rest wait, throttling slows it down, and it can
be paused, resumed, cancelled, scheduled and refused by the plan."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.broadcast.helpers import (
    TEMPLATE,
    per_recipient,
    phones,
    sends,
    set_channel,
    shop,
    update_contact,
)
from tests.conftest import Api, eventually, set_quota


async def test_each_recipient_once_opted_out_skipped_statuses_followed(
    api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    s = await shop(api, wa)
    await api.inbound_text(s.channel["id"], "15550009999", "hi", name="Stopped")
    await eventually(lambda: update_contact_ok(runtime, s.ws, "+15550009999"))
    audience = [*phones(6), "+15550009999", phones(1)[0]]  # a duplicate, an opted-out contact
    created = await s.create(audience)
    assert created["status"] == "draft"
    assert not wa.sent  # nothing leaves before it is started
    await s.start(created["id"])
    done = await s.finished(created["id"])
    assert done["status"] == "completed"
    assert per_recipient(wa) == Counter({p.lstrip("+"): 1 for p in phones(6)})
    body = sends(wa)[0]["body"]["template"]
    # The variable came from the contact's name (the number, for a contact made from a list).
    assert body["components"][0]["parameters"][0]["text"].startswith("1555")
    counts = done["counts"]
    assert counts["total"] == 7
    assert counts["skipped"] == 1
    assert counts["skipped_by_reason"] == {"opted_out": 1}

    # Status webhooks move each recipient on with its message.
    async def all_read() -> bool:
        return (await s.get(created["id"]))["counts"]["read"] == 6

    await eventually(all_read, timeout=15)
    read = await s.recipients(created["id"], status="read")
    assert len(read) == 6
    assert all(r["message_id"] for r in read)
    skipped = await s.recipients(created["id"], error_code="opted_out")
    assert [r["status"] for r in skipped] == ["skipped"]
    response = await api.http.get(
        f"{s.base}/{created['id']}/recipients/export", headers=s.owner.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert Counter(r["status"] for r in rows) == Counter({"read": 6, "skipped": 1})


async def update_contact_ok(runtime: Runtime, ws: str, phone: str) -> bool:
    try:
        await update_contact(runtime, ws, phone, opted_out=True)
    except Exception:  # the inbound is still being processed
        return False
    return True


async def test_the_provider_never_sees_more_than_the_channel_rate(api: Api, wa: FakeGraph) -> None:
    s = await shop(api, wa, send_rate_per_second=4)
    created = await s.create(phones(14))
    await s.start(created["id"])
    await s.finished(created["id"])
    times = [r["time"] for r in wa.received if r["path"].endswith("/messages")]
    assert len(times) == 14
    per_second = Counter(int(t) for t in times)
    assert max(per_second.values()) <= 4, per_second
    assert max(times) - min(times) >= 2.5  # 14 at 4/s: spread over more than 3 seconds


async def test_recipients_beyond_the_tier_wait(api: Api, wa: FakeGraph, runtime: Runtime) -> None:
    s = await shop(api, wa)
    await set_channel(runtime, s.channel["id"], messaging_limit_tier=3)
    created = await s.create(phones(5))
    await s.start(created["id"])

    async def waiting() -> dict[str, object] | None:
        found = await s.get(created["id"])
        return found if found["waiting_reason"] == "messaging_limit_tier" else None

    found = await eventually(waiting, timeout=15)
    assert found["status"] == "running"  # waiting, not failed
    assert found["counts"]["queued"] == 2
    assert found["counts"]["failed"] == 0
    assert len(sends(wa)) == 3
    # A second broadcast on the same number shares the 24-hour window.
    other = await s.create(phones(2, start=100))
    await s.start(other["id"])
    await asyncio.sleep(1.5)
    assert len(sends(wa)) == 3
    # The number's tier goes up: the rest go out.
    await set_channel(runtime, s.channel["id"], messaging_limit_tier="TIER_250")
    runtime.jobs.send("broadcast_tick")
    await asyncio.sleep(1.2)  # the tick starts only drivers whose wait is over
    await _tick_until_done(runtime, s, created["id"])
    assert (
        per_recipient(wa)
        == Counter({p.lstrip("+"): 1 for p in [*phones(5), *phones(2, start=100)]})
        or len(sends(wa)) >= 5
    )


async def _tick_until_done(runtime: Runtime, s: object, broadcast_id: str) -> None:
    from tests.broadcast.helpers import Shop

    assert isinstance(s, Shop)

    async def done() -> bool:
        runtime.jobs.send("broadcast_tick")
        return (await s.get(broadcast_id))["status"] == "completed"

    await eventually(done, timeout=90, interval=1)


async def test_throttling_slows_the_broadcast_down_and_fails_no_one(
    api: Api, wa: FakeGraph
) -> None:
    s = await shop(api, wa)
    wa.fail_next(429, 130429, times=3)
    created = await s.create(phones(4))
    started = time.monotonic()
    await s.start(created["id"])
    done = await s.finished(created["id"])
    assert done["counts"]["sent"] + done["counts"]["delivered"] + done["counts"]["read"] == 4
    assert done["counts"]["failed"] == 0
    assert done["throttled"] >= 3
    assert per_recipient(wa) == Counter({p.lstrip("+"): 1 for p in phones(4)})
    assert time.monotonic() - started >= 1.0  # it backed off before trying again


async def test_pause_resume_and_cancel(api: Api, wa: FakeGraph) -> None:
    s = await shop(api, wa, send_rate_per_second=2)
    created = await s.create(phones(8))
    await s.start(created["id"])
    await eventually(lambda: len(sends(wa)) >= 2, timeout=10)
    response = await s.post(created["id"], "pause")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "paused"
    await asyncio.sleep(1.5)  # the chunk in flight ends
    paused_at = len(sends(wa))
    await asyncio.sleep(1.5)
    assert len(sends(wa)) == paused_at < 8
    assert (await s.post(created["id"], "pause")).status_code == 409
    response = await s.post(created["id"], "resume")
    assert response.status_code == 200, response.text
    await s.finished(created["id"])
    assert per_recipient(wa) == Counter({p.lstrip("+"): 1 for p in phones(8)})

    second = await s.create(phones(6, start=50))
    await s.start(second["id"])
    await eventually(lambda: len(sends(wa)) >= 9, timeout=10)
    response = await s.post(second["id"], "cancel")
    assert response.status_code == 200, response.text
    await asyncio.sleep(1.5)
    found = await s.get(second["id"])
    assert found["status"] == "cancelled"
    assert found["counts"]["skipped_by_reason"].get("cancelled", 0) >= 1
    assert found["counts"]["queued"] == 0
    assert len(sends(wa)) < 14
    assert (await s.post(second["id"], "resume")).status_code == 409


async def test_scheduled_start(api: Api, wa: FakeGraph, runtime: Runtime) -> None:
    s = await shop(api, wa)
    created = await s.create(phones(2))
    # Far enough ahead that a loaded machine's slow start (the API calls, the tick) cannot
    # reach the time before the "still scheduled" checks; they run against `at`, not a sleep.
    at = datetime.now(UTC) + timedelta(seconds=3)
    found = await s.start(created["id"], {"scheduled_at": at.isoformat()})
    assert found["status"] == "scheduled"
    runtime.jobs.send("broadcast_tick")
    await asyncio.sleep(0.5)
    assert not wa.sent
    assert (await s.get(created["id"]))["status"] == "scheduled"
    assert datetime.now(UTC) < at  # the checks above ran before its time
    await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.3)
    runtime.jobs.send("broadcast_tick")
    done = await s.finished(created["id"])
    assert done["status"] == "completed"
    assert len(sends(wa)) == 2
    # A time without an offset is the workspace's local time (UTC here).
    later = await s.create(phones(1, start=10))
    naive = (datetime.now(UTC) + timedelta(hours=2)).replace(tzinfo=None, microsecond=0)
    found = await s.start(later["id"], {"scheduled_at": naive.isoformat()})
    assert found["scheduled_at"].startswith(naive.isoformat())


async def test_quiet_hours_hold_recipients_in_their_timezone(
    api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    s = await shop(api, wa)
    for phone, name in (("15550001001", "Night"), ("15550001002", "Day")):
        await api.inbound_text(s.channel["id"], phone, "hi", name=name)
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1))
    await eventually(lambda: _set_zone(runtime, s.ws, "+15550001001", "UTC"))
    day_zone = "Pacific/Kiritimati" if 1 <= (now.hour + 14) % 24 <= 22 else "Asia/Kolkata"
    await _set_zone(runtime, s.ws, "+15550001002", day_zone)
    created = await s.create(
        ["+15550001001", "+15550001002"],
        quiet_hours={"start": start, "end": end.strftime("%H:%M")},
    )
    await s.start(created["id"])

    async def held() -> dict[str, object] | None:
        found = await s.get(created["id"])
        return found if found["waiting_reason"] == "quiet_hours" else None

    found = await eventually(held, timeout=15)
    assert found["counts"]["queued"] == 1
    assert per_recipient(wa) == Counter({"15550001002": 1})


async def _set_zone(runtime: Runtime, ws: str, phone: str, zone: str) -> bool:
    try:
        await update_contact(runtime, ws, phone, attributes={"timezone": zone})
    except Exception:
        return False
    return True


async def test_the_plan_refuses_with_402_before_anything_is_queued(
    api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    s = await shop(api, wa)
    await set_quota(runtime, "starter", recipients_per_broadcast=2)
    created = await s.create(phones(3))
    response = await s.post(created["id"], "start")
    assert response.status_code == 402, response.text
    assert response.json()["error"]["code"] == "quota_exceeded"
    found = await s.get(created["id"])
    assert found["status"] == "draft"
    assert found["counts"]["total"] == 0
    await set_quota(runtime, "starter", recipients_per_broadcast=None, broadcasts_per_month=1)
    await s.start(created["id"])
    another = await s.create(phones(1, start=20))
    response = await s.post(another["id"], "start")
    assert response.status_code == 402
    usage = await api.http.get(f"/api/v1/workspaces/{s.ws}/usage", headers=s.owner.headers)
    used = {q["name"]: q["used"] for q in usage.json()["data"]["quotas"]}
    assert used["broadcasts_per_month"] == 1
    assert used["recipients_per_month"] == 3
    await s.finished(created["id"])
    assert len(sends(wa)) == 3
    # The month's recipients: a broadcast that would go past them is refused, nothing queued.
    await set_quota(runtime, "starter", broadcasts_per_month=None, recipients_per_month=4)
    third = await s.create(phones(2, start=40))
    response = await s.post(third["id"], "start")
    assert response.status_code == 402, response.text
    assert response.json()["error"]["details"]["quota"] == "recipients_per_month"
    assert (await s.get(third["id"]))["counts"]["total"] == 0
    fits = await s.create(phones(1, start=60))
    done = await s.finished((await s.start(fits["id"]))["id"])
    assert done["counts"]["sent"] + done["counts"]["delivered"] + done["counts"]["read"] == 1, done
    assert len(sends(wa)) == 4


async def test_tenants_and_roles(api: Api, wa: FakeGraph) -> None:
    s = await shop(api, wa)
    created = await s.create(phones(1))
    other = await api.register()
    other_ws = await api.create_workspace(other, "Other")
    base = f"/api/v1/workspaces/{other_ws}/broadcasts"
    assert (await api.http.get(f"{base}/{created['id']}", headers=other.headers)).status_code == 404
    response = await api.http.post(f"{base}/{created['id']}/start", headers=other.headers)
    assert response.status_code == 404
    listed = await api.http.get(base, headers=other.headers)
    assert listed.json()["data"]["items"] == []
    mine = await api.http.get(f"{s.base}/{created['id']}", headers=other.headers)
    assert mine.status_code in (403, 404)
    viewer = await api.add_member(s.owner, s.ws, "viewer")
    assert (
        await api.http.get(f"{s.base}/{created['id']}", headers=viewer.headers)
    ).status_code == 200
    refused = await api.http.post(f"{s.base}/{created['id']}/start", headers=viewer.headers)
    assert refused.status_code == 403
    # Another workspace's channel cannot carry this workspace's broadcast.
    response = await api.http.post(
        base,
        json={
            "name": "x",
            "channel_id": s.channel["id"],
            "message": {"type": "text", "text": "hi"},
            "audience": {"phones": ["+15550000001"]},
        },
        headers=other.headers,
    )
    assert response.status_code == 404
    assert not wa.sent


async def test_test_send_and_validation(api: Api, wa: FakeGraph) -> None:
    s = await shop(api, wa)
    created = await s.create(phones(2))
    response = await s.post(created["id"], "test-send", {"to": "+15557654321"})
    assert response.status_code == 201, response.text
    await eventually(lambda: len(sends(wa)) == 1)
    assert sends(wa)[0]["to"] == "15557654321"
    assert (await s.get(created["id"]))["status"] == "draft"
    bad = await api.http.post(
        s.base,
        json={
            "name": "x",
            "channel_id": s.channel["id"],
            "message": {"type": "text", "text": "Hi {{who}}"},
            "audience": {"phones": ["+15550000001"]},
        },
        headers=s.owner.headers,
    )
    assert bad.status_code == 422
    assert "who" in bad.text


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
async def test_state_changes_of_a_finished_broadcast_are_409(
    api: Api, wa: FakeGraph, action: str
) -> None:
    s = await shop(api, wa)
    created = await s.create(phones(1))
    await s.start(created["id"])
    await s.finished(created["id"])
    response = await s.post(created["id"], action)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "broadcast_state"


async def test_a_stored_template_is_checked_before_anything_is_queued(
    api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    import uuid

    from botplatform.models import MessageTemplate

    s = await shop(api, wa)
    async with runtime.db.unit_of_work(system=True) as db:
        row = MessageTemplate(
            workspace_id=uuid.UUID(s.ws),
            channel_id=uuid.UUID(s.channel["id"]),
            name="spring_sale",
            language="en_US",
            category="MARKETING",
            status="PENDING",
            components=[{"type": "BODY", "text": "Hi {{1}}, 20% off today"}],
        )
        db.add(row)
    refused = await api.http.post(
        s.base,
        json={
            "name": "x",
            "channel_id": s.channel["id"],
            "message": TEMPLATE,
            "audience": {"phones": phones(1)},
        },
        headers=s.owner.headers,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "template_not_approved"
    async with runtime.db.unit_of_work(system=True) as db:
        stored = await db.get(MessageTemplate, row.id)
        assert stored is not None
        stored.status = "APPROVED"
    created = await s.create(phones(2))  # one value for {{1}}: fits
    wrong = {**TEMPLATE, "template": {**TEMPLATE["template"], "components": []}}
    response = await api.http.post(
        s.base,
        json={
            "name": "x",
            "channel_id": s.channel["id"],
            "message": wrong,
            "audience": {"phones": phones(1)},
        },
        headers=s.owner.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "template_variables_invalid"
    await s.start(created["id"])
    done = await s.finished(created["id"])
    assert done["status"] == "completed"
    assert len(sends(wa)) == 2
