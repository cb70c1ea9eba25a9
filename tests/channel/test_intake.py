"""Group commit on the webhook path: webhooks that arrive together share one transaction, yet
each is acknowledged only once its own row is committed, a duplicate inside one group is
still a duplicate, tenants stay apart, and a failed write fails every webhook of its group
(none is acknowledged without its row)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError

from botplatform.channels import intake
from botplatform.kit.errors import NotFound
from botplatform.models import Channel, InboundEvent
from botplatform.runtime import Runtime
from tests.conftest import Api, eventually, meta_signature, whatsapp_text_payload


def _body(n: int) -> bytes:
    payload = whatsapp_text_payload(f"1555000{n:04d}", f"hello {n}", "Customer", f"wamid.g{n}")
    return json.dumps(payload).encode()


async def _events(runtime: Runtime) -> list[InboundEvent]:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        return list((await db.execute(select(InboundEvent))).scalars().all())


async def test_concurrent_webhooks_share_transactions_and_keep_duplicates_apart(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.register()
    first_ws, second_ws = await api.create_workspace(owner), await api.create_workspace(owner)
    first, second = (
        await api.create_channel(owner, first_ws),
        await api.create_channel(owner, second_ws, phone_number_id="9988776655"),
    )
    statements: list[int] = []  # the webhooks each INSERT took
    for name in ("_insert_postgres", "_insert_sqlite"):
        real = getattr(intake, name)

        async def counted(db: Any, ws: Any, webhooks: list[Any], real: Any = real) -> Any:
            statements.append(len(webhooks))
            return await real(db, ws, webhooks)

        monkeypatch.setattr(intake, name, counted)

    bodies = [_body(n) for n in range(40)]
    posts = [(first["id"], body) for body in bodies[:30]] + [
        (second["id"], body) for body in bodies[30:]
    ]
    posts += [(first["id"], bodies[0]), (first["id"], bodies[1])]  # redelivered at once
    answers = await asyncio.gather(
        *(
            client.post(
                f"/webhooks/whatsapp/{channel_id}", content=body, headers=meta_signature(body)
            )
            for channel_id, body in posts
        )
    )

    assert [a.status_code for a in answers] == [200] * len(posts)
    duplicates = [a.json()["data"]["duplicate"] for a in answers]
    assert duplicates.count(True) == 2 and duplicates.count(False) == 40
    rows = await _events(runtime)
    assert len(rows) == 40
    assert sum(str(r.channel_id) == second["id"] for r in rows) == 10
    for row in rows:
        assert str(row.workspace_id) == (
            first_ws if str(row.channel_id) == first["id"] else second_ws
        )
    # Fewer INSERTs than webhooks: they were grouped.
    assert 0 < len(statements) < len(posts)

    async def processed() -> bool:
        return all(row.status == "processed" for row in await _events(runtime))

    assert await eventually(processed)  # one job per new row, each ran


async def test_a_failed_group_write_acknowledges_nothing(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)

    async def broken(*_: Any) -> set[int]:
        raise OperationalError("INSERT INTO inbound_events", {}, Exception("disk full"))

    monkeypatch.setattr(intake, "_insert_postgres", broken)
    monkeypatch.setattr(intake, "_insert_sqlite", broken)
    bodies = [_body(n) for n in range(5)]
    answers = await asyncio.gather(
        *(
            client.post(f"/webhooks/whatsapp/{channel['id']}", content=b, headers=meta_signature(b))
            for b in bodies
        )
    )
    assert {a.status_code for a in answers} == {503}
    assert {a.json()["error"]["code"] for a in answers} == {"database_unavailable"}
    assert await _events(runtime) == []
    monkeypatch.undo()
    # The provider's retry then lands.
    again = await client.post(
        f"/webhooks/whatsapp/{channel['id']}", content=bodies[0], headers=meta_signature(bodies[0])
    )
    assert again.status_code == 200 and again.json()["data"]["duplicate"] is False


async def test_a_deleted_channel_is_refused_at_once_by_this_process(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    body = _body(1)
    url = f"/webhooks/whatsapp/{channel['id']}"
    assert (await client.post(url, content=body, headers=meta_signature(body))).status_code == 200
    deleted = await client.delete(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}", headers=owner.headers
    )
    assert deleted.status_code == 200
    body = _body(2)
    assert (await client.post(url, content=body, headers=meta_signature(body))).status_code == 404


async def test_a_webhook_arriving_as_the_last_writer_finishes_is_written(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    """The writer that stored the previous webhook has just seen nothing waiting and is ending
    (its task not yet marked finished) when the next webhook arrives: it must still be
    written, not left waiting for a writer that is gone. A caller that stores again as soon
    as its own store returns lands exactly in that moment."""
    owner = await api.register()
    workspace = await api.create_workspace(owner)
    created = await api.create_channel(owner, workspace)
    channel = await runtime.intake.channel("whatsapp", uuid.UUID(created["id"]))
    async with asyncio.timeout(10):  # not wait_for: its extra task would hide the moment
        for n in range(5):
            assert await runtime.intake.store(channel, _body(n))
    assert len(await _events(runtime)) == 5


async def test_a_group_queues_one_job_per_workspace_with_its_new_events(
    api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group's new events reach the worker as one `process_inbound_events` job per
    workspace (a redelivery in the group adds nothing), sent once the rows are committed."""
    owner = await api.register()
    first_ws, second_ws = await api.create_workspace(owner), await api.create_workspace(owner)
    channels = [
        await runtime.intake.channel("whatsapp", uuid.UUID(created["id"]))
        for created in (
            await api.create_channel(owner, first_ws),
            await api.create_channel(owner, second_ws, phone_number_id="9988776611"),
        )
    ]
    sent: list[Any] = []

    async def keep(jobs: list[Any]) -> None:  # the jobs, kept here instead of sent
        assert len(await _events(runtime)) == 4  # committed before they leave
        sent.extend(jobs)

    monkeypatch.setattr(runtime.db, "after_commit", keep)
    stores = [(channels[0], _body(n)) for n in (70, 71, 72, 70)] + [(channels[1], _body(73))]
    answers = await asyncio.gather(*(runtime.intake.store(ch, body) for ch, body in stores))
    assert answers == [True, True, True, False, True]
    assert sorted((job.name, job.args[0], len(job.args[1])) for job in sent) == sorted(
        [("process_inbound_events", first_ws, 3), ("process_inbound_events", second_ws, 1)]
    )
    ids = {event_id for job in sent for event_id in job.args[1]}
    assert ids == {str(event.id) for event in await _events(runtime)}


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.DiskFullError("could not extend file"),  # refused, connection fine
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),  # lost
    ],
    ids=["refused", "lost"],
)
async def test_a_failed_postgres_write_answers_503_and_leaves_the_pool_usable(
    client: httpx.AsyncClient,
    api: Api,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
) -> None:
    """The PostgreSQL write talks to asyncpg directly: its errors still answer 503 (try
    again), and the connection goes back rolled back, or is dropped when it may be broken."""
    if runtime.db.dialect != "postgresql":
        pytest.skip("the SQLite write goes through SQLAlchemy")
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    url = f"/webhooks/whatsapp/{channel['id']}"

    async def failing(*_: Any) -> Any:
        raise error

    monkeypatch.setattr(intake, "_insert_postgres", failing)
    answer = await client.post(url, content=_body(80), headers=meta_signature(_body(80)))
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "database_unavailable"
    monkeypatch.undo()
    bodies = [_body(n) for n in range(81, 89)]  # enough to need several pooled connections
    answers = await asyncio.gather(
        *(client.post(url, content=b, headers=meta_signature(b)) for b in bodies)
    )
    assert [a.status_code for a in answers] == [200] * len(bodies)
    assert len(await _events(runtime)) == len(bodies)


async def _lingering_channel(
    api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> tuple[intake.WebhookChannel, list[Any]]:
    """A channel whose groups linger 100 ms, and the list of the jobs its groups send."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await runtime.intake.channel(
        "whatsapp", uuid.UUID((await api.create_channel(owner, ws))["id"])
    )
    sent: list[Any] = []

    async def keep(jobs: list[Any]) -> None:
        sent.extend(jobs)

    monkeypatch.setattr(runtime.db, "after_commit", keep)
    monkeypatch.setattr(runtime.settings, "webhook_group_linger_ms", 100)
    return channel, sent


async def test_a_lingering_group_takes_the_webhooks_that_follow_it(
    api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `webhook_group_linger_ms`, a lone webhook waits for those arriving shortly after
    it: webhooks 30 ms apart are written as one group, one job (without the linger, the first
    is written at once, alone)."""
    channel, sent = await _lingering_channel(api, runtime, monkeypatch)

    async def later(n: int) -> bool:
        await asyncio.sleep(0.03 * n)
        return await runtime.intake.store(channel, _body(80 + n))

    assert await asyncio.gather(*(later(n) for n in range(3))) == [True, True, True]
    assert [(job.name, len(job.args[1])) for job in sent] == [("process_inbound_events", 3)]


async def test_a_groups_job_lists_its_events_in_the_order_they_arrived() -> None:
    """The rows of a group share one timestamp, and RETURNING promises no order: the job's
    list is what keeps a customer's messages in order (channels/batch.pending_events)."""
    workspace_id, channel_id = uuid.uuid4(), uuid.uuid4()
    webhooks = [
        intake._Webhook(workspace_id, channel_id, "whatsapp", b"{}", f"key-{n}") for n in range(5)
    ]
    first = intake._first_of_each(webhooks)
    returned = [(f"event-{n}", str(channel_id), f"key-{n}") for n in (3, 0, 4, 1, 2)]
    _, jobs = intake._created(workspace_id, first, returned)
    assert [job.args[1] for job in jobs] == [[f"event-{n}" for n in range(5)]]


async def test_a_group_being_written_leaves_the_lingering_group_its_webhooks(
    api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that finishes its group while another lingers does not take the webhooks
    that lingering group waits for; and a lingering group is written as soon as it is large
    enough, not when its timer ends. (SQLite has one writer, which takes what waits.)"""
    if runtime.db.dialect != "postgresql":
        pytest.skip("SQLite has one writer")
    channel, sent = await _lingering_channel(api, runtime, monkeypatch)
    many = intake.LINGER_UNTIL_WEBHOOKS

    async def later(delay: float, numbers: range) -> list[bool]:
        await asyncio.sleep(delay)
        return list(
            await asyncio.gather(*(runtime.intake.store(channel, _body(n)) for n in numbers))
        )

    started = time.monotonic()
    await asyncio.gather(
        later(0, range(100, 100 + many)),  # large enough: written at once
        later(0.002, range(200, 202)),  # while it is written: a new group, lingering
        later(0.04, range(300, 300 + many)),  # fills the lingering group: written at once
    )
    assert time.monotonic() - started < 0.1
    assert [len(job.args[1]) for job in sent] == [many, 2 + many]


async def test_a_webhook_whose_channel_was_deleted_fails_alone(
    api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group holds many tenants' webhooks: one whose channel was deleted while it waited
    (its row's foreign key refuses it) answers 404 `channel_not_found`, and the others of its
    group are stored (before, the whole group failed with it: a 500 or 503 each)."""
    channel, sent = await _lingering_channel(api, runtime, monkeypatch)
    other = await api.register()
    gone = await runtime.intake.channel(
        "whatsapp",
        uuid.UUID((await api.create_channel(other, await api.create_workspace(other)))["id"]),
    )
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(delete(Channel).where(Channel.id == gone.id))
    stored, refused = await asyncio.gather(
        runtime.intake.store(channel, _body(91)),
        runtime.intake.store(gone, _body(92)),
        return_exceptions=True,
    )
    assert stored is True
    assert isinstance(refused, NotFound) and refused.code == "channel_not_found", refused
    assert [event.channel_id for event in await _events(runtime)] == [channel.id]
    assert [len(job.args[1]) for job in sent] == [1]
