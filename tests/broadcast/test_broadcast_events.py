"""`broadcast.started|paused|completed|failed`: emitted as the broadcast lives, valid against
their published schemas, delivered like every event; the live socket shows them to members
who may read broadcasts."""

from __future__ import annotations

from botplatform.authz.permissions import ROLE_PERMISSIONS, Role
from botplatform.events.catalog import BROADCAST_EVENTS
from botplatform.events.endpoints import readable_types
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.broadcast.helpers import phones, sends, shop
from tests.conftest import Api, eventually, set_quota
from tests.events.test_events import assert_valid, events_of


async def test_a_broadcasts_life_is_told_in_events(
    api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    s = await shop(api, wa, send_rate_per_second=2)
    await api.subscribe(s.owner, s.ws)  # its events stored, read below
    created = await s.create(phones(3))
    await s.start(created["id"])
    await eventually(lambda: len(sends(wa)) >= 1, timeout=10)
    assert (await s.post(created["id"], "pause")).status_code == 200
    assert (await s.post(created["id"], "resume")).status_code == 200
    await s.finished(created["id"])
    # The month's messages run out during the next one: it fails, and says why.
    await set_quota(runtime, "starter", messages_per_month=3)
    failing = await s.create(phones(3, start=10))
    await s.start(failing["id"])
    failed = await s.finished(failing["id"])
    assert failed["status"] == "failed"
    assert failed["error"]
    assert failed["counts"]["failed_by_code"] == {"quota_exceeded": failed["counts"]["failed"]}

    events = [e for e in await events_of(runtime, s.ws) if e["type"] in BROADCAST_EVENTS]
    for event in events:
        assert_valid(event)
    mine = [e["type"] for e in events if e["data"]["broadcast"]["id"] == created["id"]]
    assert mine == ["broadcast.started", "broadcast.paused", "broadcast.completed"]
    theirs = [e["type"] for e in events if e["data"]["broadcast"]["id"] == failing["id"]]
    assert theirs == ["broadcast.started", "broadcast.failed"]
    completed = next(e for e in events if e["type"] == "broadcast.completed")
    assert completed["data"]["broadcast"]["total"] == 3
    assert completed["data"]["broadcast"]["completed_at"]


def test_live_socket_shows_broadcast_events_to_readers_of_broadcasts() -> None:
    for role in (Role.VIEWER, Role.AGENT):
        allowed = ROLE_PERMISSIONS[role]
        seen = readable_types(_Access(allowed))  # type: ignore[arg-type]
        assert (seen >= BROADCAST_EVENTS) == ("broadcasts:read" in allowed)


class _Access:
    def __init__(self, permissions: frozenset[object]) -> None:
        self.permissions = permissions

    def can(self, permission: object) -> bool:
        return permission in self.permissions
