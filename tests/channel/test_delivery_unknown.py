"""Never a duplicate, never a silent loss (channels/delivery.py): a leased send without the
`send_attempted_at` marker provably never left and is sent again; one with it is never re-sent
automatically — its status webhook moves it on, or after the grace it ends `failed` /
`delivery_unknown` (event, metric), which a person may resend from the API or the inbox."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import DBAPIError

from botplatform.broadcast import sending
from botplatform.broadcast.claim import Ready
from botplatform.broadcast.driver import Driver
from botplatform.channels import delivery
from botplatform.channels.base import ProviderSendError
from botplatform.channels.messages import Content, MessageType, OutboundMessage
from botplatform.channels.whatsapp.adapter import WhatsAppAdapter
from botplatform.kit import provider_http
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.message.schemas import MessageBody
from botplatform.models import AuditLog, Channel, Event, Message
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from botplatform.worker.jobs import JobContext
from botplatform.worker.sweeper import sweep_once
from tests.conftest import Account, Api, base_settings, eventually
from tests.dashboard.helpers import browser_login, csrf_of

CUSTOMER = "15551230000"


async def _setup(api: Api, wa: FakeGraph) -> tuple[Account, str, dict[str, Any]]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    await api.subscribe(owner, ws)  # so that its events are stored, to be read below
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await api.inbound_text(channel["id"], CUSTOMER, "hello", name="Dana")
    return owner, ws, await api.conversation_of(owner, ws, "Dana")


async def _sent_once(
    api: Api,
    wa: FakeGraph,
    runtime: Runtime,
    owner: Account,
    ws: str,
    conversation_id: str,
    text: str,
) -> tuple[str, str]:
    """A reply really sent (no status webhooks): (its id, the provider's id for it)."""
    wa.auto_status = False
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation_id}/messages",
        json={"text": text},
        headers=owner.headers,
    )
    message_id = response.json()["data"]["id"]
    (sent,) = await eventually(lambda: wa.sent)
    await eventually(lambda: _status(runtime, message_id, "sent"))
    wa.sent.clear()
    return message_id, sent["wamid"]


async def _row(runtime: Runtime, message_id: str) -> Message:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        row = await db.get(Message, uuid.UUID(message_id))
        assert row is not None
        return row


async def _status(runtime: Runtime, message_id: str, status: str) -> Message | None:
    row = await _row(runtime, message_id)
    return row if row.status == status else None


async def _as_interrupted(
    runtime: Runtime, message_id: str, *, attempted_ago: float | None
) -> None:
    """The row as a worker killed mid-send leaves it: leased, lease over, no provider id; with
    the marker (`attempted_ago` seconds old) if it died after the marker was committed."""
    now = utcnow()
    marker = None if attempted_ago is None else now - timedelta(seconds=attempted_ago)
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(
            update(Message)
            .where(Message.id == uuid.UUID(message_id))
            .values(
                status="sending",
                lease_until=now - timedelta(seconds=1),
                send_attempted_at=marker,
                provider_message_id=None,
                sent_at=None,
                updated_at=now - timedelta(seconds=600),
            )
        )


async def _sweep(runtime: Runtime) -> dict[str, int]:
    async with runtime.db.unit_of_work(system=True) as db:
        return await sweep_once(JobContext(runtime, db, "sweep", 1, 1), after_seconds=0)


def _unknown_total() -> float:
    return REGISTRY.get_sample_value("messages_delivery_unknown_total") or 0.0


@pytest.fixture(autouse=True)
def _statuses_back_on(wa: FakeGraph) -> Any:
    yield
    wa.auto_status = True


async def test_a_lease_without_the_marker_never_left_and_is_sent_again(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, conversation = await _setup(api, wa)
    message_id, _ = await _sent_once(api, wa, runtime, owner, ws, conversation["id"], "again")
    await _as_interrupted(runtime, message_id, attempted_ago=None)

    swept = await _sweep(runtime)
    assert swept["outbound_messages"] == 1
    (sent,) = await eventually(lambda: wa.sent)
    assert sent["body"]["text"]["body"] == "again"
    row = await eventually(lambda: _status(runtime, message_id, "sent"))
    assert row.send_attempted_at is None and row.provider_message_id == sent["wamid"]


async def test_a_send_that_may_have_left_is_never_sent_again_and_its_status_settles_it(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, conversation = await _setup(api, wa)
    message_id, wamid = await _sent_once(api, wa, runtime, owner, ws, conversation["id"], "once")
    await _as_interrupted(runtime, message_id, attempted_ago=5)

    swept = await _sweep(runtime)
    assert swept["outbound_messages"] == 0 and swept["delivery_unknown"] == 0  # within grace
    for _ in range(2):  # a redelivered job, and one handed over again, find it taken
        runtime.jobs.send("send_message", ws, message_id)
    await asyncio.sleep(0.6)
    assert wa.sent == []
    assert (await _row(runtime, message_id)).status == "sending"

    # The provider's status names our id (biz_opaque_callback_data): the send did leave.
    await wa.post_status(wamid, "delivered", CUSTOMER)
    row = await eventually(lambda: _status(runtime, message_id, "delivered"))
    assert row.provider_message_id == wamid and row.send_attempted_at is None
    assert wa.sent == []


async def test_after_the_grace_it_ends_delivery_unknown_with_an_event_and_a_metric(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, conversation = await _setup(api, wa)
    message_id, wamid = await _sent_once(api, wa, runtime, owner, ws, conversation["id"], "lost?")
    grace = runtime.settings.send_unknown_grace_seconds
    await _as_interrupted(runtime, message_id, attempted_ago=grace + 1)
    before = _unknown_total()

    swept = await _sweep(runtime)
    assert swept["delivery_unknown"] == 1 and swept["outbound_messages"] == 0
    row = await _row(runtime, message_id)
    assert row.status == "failed" and row.error_code == "delivery_unknown"
    assert row.error_title and "not sent again automatically" in row.error_title
    assert _unknown_total() == before + 1
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        events = (await db.execute(select(Event).where(Event.type == "message.failed"))).scalars()
        payloads = [e.data["message"] for e in events if e.data["message"]["id"] == message_id]
    assert [p["error"]["code"] for p in payloads] == ["delivery_unknown"]
    assert (await _sweep(runtime))["delivery_unknown"] == 0  # ended once
    assert _unknown_total() == before + 1
    runtime.jobs.send("send_message", ws, message_id)
    await asyncio.sleep(0.5)
    assert wa.sent == []  # a failed row is never sent by the job

    # A late status: the provider says it arrived, so it moves on and the error goes.
    await wa.post_status(wamid, "read", CUSTOMER)
    row = await eventually(lambda: _status(runtime, message_id, "read"))
    assert row.error_code is None and row.error_title is None
    assert row.provider_message_id == wamid


async def test_the_marker_is_fenced_by_the_lease_of_the_claim(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, conversation = await _setup(api, wa)
    message_id, _ = await _sent_once(api, wa, runtime, owner, ws, conversation["id"], "fenced")
    row_id, workspace_id = uuid.UUID(message_id), uuid.UUID(ws)
    ours = utcnow() + timedelta(seconds=30)
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(
            update(Message)
            .where(Message.id == row_id)
            .values(status="sending", lease_until=ours + timedelta(seconds=5))  # re-claimed
        )
    assert await delivery.commit_attempt(runtime.db, workspace_id, [row_id], ours) == set()
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(update(Message).where(Message.id == row_id).values(lease_until=ours))
    marked = await delivery.commit_attempt(runtime.db, workspace_id, [row_id], ours)
    assert marked == {row_id}
    assert await delivery.commit_attempt(runtime.db, workspace_id, [row_id], ours) == set()
    assert (await _row(runtime, message_id)).send_attempted_at is not None


async def _unknown_reply(
    api: Api, wa: FakeGraph, runtime: Runtime
) -> tuple[Account, str, dict[str, Any], str]:
    owner, ws, conversation = await _setup(api, wa)
    message_id, _ = await _sent_once(
        api, wa, runtime, owner, ws, conversation["id"], "did it arrive?"
    )
    await _as_interrupted(runtime, message_id, attempted_ago=10_000)
    assert (await _sweep(runtime))["delivery_unknown"] == 1
    return owner, ws, conversation, message_id


async def test_resend_queues_the_content_again_once_and_only_for_a_failed_message(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, _, message_id = await _unknown_reply(api, wa, runtime)
    url = f"/api/v1/workspaces/{ws}/messages/{message_id}/resend"
    resent = await client.post(url, headers=owner.headers)
    assert resent.status_code == 201, resent.text
    new = resent.json()["data"]
    assert new["id"] != message_id and new["status"] == "queued" and new["text"] == "did it arrive?"
    (sent,) = await eventually(lambda: wa.sent)
    assert sent["body"]["text"]["body"] == "did it arrive?"
    again = await client.post(url, headers=owner.headers)  # a second click: the same resend
    assert again.status_code == 201 and again.json()["data"]["id"] == new["id"]
    await asyncio.sleep(0.3)
    assert len(wa.sent) == 1
    assert (await _row(runtime, message_id)).error_code == "delivery_unknown"  # the record
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        actions = (await db.execute(select(AuditLog.action))).scalars().all()
    assert "message.resend" in actions

    await eventually(lambda: _status(runtime, new["id"], "sent"))
    not_failed = await client.post(
        f"/api/v1/workspaces/{ws}/messages/{new['id']}/resend", headers=owner.headers
    )
    assert not_failed.status_code == 409
    assert not_failed.json()["error"]["code"] == "message_not_failed"
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        inbound = (
            await db.execute(select(Message.id).where(Message.direction == "inbound"))
        ).scalar_one()
    refused = await client.post(
        f"/api/v1/workspaces/{ws}/messages/{inbound}/resend", headers=owner.headers
    )
    assert refused.status_code == 409


async def test_resend_needs_the_reply_permission_and_stays_in_its_workspace(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, _, message_id = await _unknown_reply(api, wa, runtime)
    viewer = await api.add_member(owner, ws, "viewer")
    url = f"/api/v1/workspaces/{ws}/messages/{message_id}/resend"
    assert (await client.post(url, headers=viewer.headers)).status_code == 403
    stranger = await api.register()
    their_ws = await api.create_workspace(stranger, name="Other")
    assert (await client.post(url, headers=stranger.headers)).status_code in (403, 404)
    theirs = await client.post(
        f"/api/v1/workspaces/{their_ws}/messages/{message_id}/resend", headers=stranger.headers
    )
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "message_not_found"
    missing = await client.post(
        f"/api/v1/workspaces/{ws}/messages/{uuid.uuid4()}/resend", headers=owner.headers
    )
    assert missing.status_code == 404
    assert (
        await client.post(url.replace(message_id, "nope"), headers=owner.headers)
    ).status_code == 422
    await asyncio.sleep(0.3)
    assert wa.sent == []


async def test_the_inbox_says_delivery_unknown_plainly_and_offers_resend(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, conversation, message_id = await _unknown_reply(api, wa, runtime)
    await browser_login(client, owner.email, owner.password)
    view = await client.get(f"/app/w/{ws}/inbox/{conversation['id']}")
    assert "Delivery unknown." in view.text and "not sent again automatically" in view.text
    action = f"/app/w/{ws}/inbox/{conversation['id']}/messages/{message_id}/resend"
    assert f'action="{action}"' in view.text
    resent = await client.post(
        action, data={"csrf_token": csrf_of(view.text)}, headers={"HX-Request": "true"}
    )
    assert resent.status_code == 200 and "did it arrive?" in resent.text
    (sent,) = await eventually(lambda: wa.sent)
    assert sent["body"]["text"]["body"] == "did it arrive?"
    elsewhere = await client.post(  # a message id under another conversation's path
        f"/app/w/{ws}/inbox/{uuid.uuid4()}/messages/{message_id}/resend",
        data={"csrf_token": csrf_of(view.text)},
    )
    assert elsewhere.status_code == 404


def _adapter(tmp_path: Path) -> WhatsAppAdapter:
    channel = Channel(
        id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        provider="whatsapp",
        name="c",
        config={"phone_number_id": "1122334455667"},
        access_token="tok",
    )
    return WhatsAppAdapter(channel, base_settings(tmp_path), httpx.AsyncClient())


@pytest.mark.parametrize(
    ("error", "ambiguous"),
    [
        (provider_http.NeverSent("refused"), False),
        (provider_http.MaybeSent("no answer"), True),
    ],
)
async def test_only_an_error_before_the_connection_is_known_never_to_have_left(
    error: Exception, ambiguous: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter's side; which failures are which is `tests/kit/test_provider_http.py`."""

    async def failing(*args: Any) -> Any:
        raise error

    monkeypatch.setattr(provider_http, "post_json", failing)
    outbound = OutboundMessage(
        recipient_id=CUSTOMER, content=Content(type=MessageType.TEXT, text="x"), idempotency_key="k"
    )
    with pytest.raises(ProviderSendError) as raised:
        await _adapter(tmp_path).send(outbound)
    assert raised.value.retryable and raised.value.ambiguous is ambiguous


async def test_a_batch_marks_its_rows_in_one_update_and_writes_outcomes_per_row(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    """The protocol as a batched sender uses it: one claim value for the batch, one UPDATE
    marking every row, one executemany writing each row's outcome."""
    owner, ws, conversation = await _setup(api, wa)
    ids = [
        uuid.UUID((await _sent_once(api, wa, runtime, owner, ws, conversation["id"], text))[0])
        for text in ("a", "b", "c")
    ]
    lease = utcnow() + timedelta(seconds=30)
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(
            update(Message)
            .where(Message.id.in_(ids))
            .values(status="sending", lease_until=lease, provider_message_id=None)
        )
    assert await delivery.commit_attempt(runtime.db, uuid.UUID(ws), ids, lease) == set(ids)
    table = Message.__table__
    outcome = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(**delivery.sent_values(bindparam("provider_id")))
    )
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, uuid.UUID(ws))
        await db.execute(
            outcome,
            [{"row_id": row_id, "provider_id": f"wamid.{n}"} for n, row_id in enumerate(ids)],
        )
    rows = [await _row(runtime, str(row_id)) for row_id in ids]
    assert [(r.status, r.provider_message_id, r.send_attempted_at) for r in rows] == [
        ("sent", f"wamid.{n}", None) for n in range(3)
    ]


# -- a status that beats the outcome ----------------------------------------------------------
#
# A broadcast chunk's status webhooks often arrive before its outcomes are written: the status
# batch finds its messages by our id (biz_opaque_callback_data) while the chunk's outcome write
# updates the same rows. Both lock them in id order (PostgreSQL), or each holds a row the other
# waits for and PostgreSQL cancels one as a deadlock: a cancelled outcome write used to leave a
# whole chunk of sends to their statuses, and `delivery_unknown` when those came late. Each test
# holds the lower row, lets the writer wait for it, and checks it took nothing out of order.


async def _two_awaiting_outcome(
    api: Api, wa: FakeGraph, runtime: Runtime
) -> tuple[str, list[tuple[uuid.UUID, str]]]:
    """Two sends whose requests left and whose answers were not written yet, in id order."""
    if runtime.db.dialect != "postgresql":
        pytest.skip("row locks and their order: PostgreSQL (SQLite has one writer)")
    owner, ws, conversation = await _setup(api, wa)
    sent = [await _sent_once(api, wa, runtime, owner, ws, conversation["id"], t) for t in "ab"]
    for message_id, _ in sent:
        await _as_interrupted(runtime, message_id, attempted_ago=0.5)
    return ws, sorted((uuid.UUID(message_id), wamid) for message_id, wamid in sent)


async def _waiting_for_a_lock(runtime: Runtime) -> bool:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        waiting = await db.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
    return bool(waiting)


async def _free(runtime: Runtime, row_id: uuid.UUID) -> bool:
    """Whether nobody holds the row's lock (taken and given back at once)."""
    try:
        async with runtime.db.unit_of_work(system=True) as db:
            locking = select(Message.id).where(Message.id == row_id).with_for_update(nowait=True)
            await db.execute(locking)
    except DBAPIError:
        return False
    return True


def _read_status(wamid: str, row_id: uuid.UUID) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": "read",
        "timestamp": str(int(utcnow().timestamp())),
        "recipient_id": CUSTOMER,
        "biz_opaque_callback_data": str(row_id),
    }


async def test_a_status_batch_locks_the_messages_it_names_by_our_id_in_id_order(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    _, [(low, low_wamid), (high, high_wamid)] = await _two_awaiting_outcome(api, wa, runtime)
    async with runtime.db.unit_of_work(system=True) as holder:
        await holder.execute(select(Message.id).where(Message.id == low).with_for_update())
        # One webhook, one batch: the higher row's status first.
        statuses = [_read_status(high_wamid, high), _read_status(low_wamid, low)]
        await wa.deliver({"statuses": statuses})
        await eventually(lambda: _waiting_for_a_lock(runtime))
        assert await _free(runtime, high), "the batch took the higher row before the lower"
    for row_id, wamid in ((low, low_wamid), (high, high_wamid)):
        row = await eventually(lambda row_id=row_id: _status(runtime, str(row_id), "read"))
        assert row.provider_message_id == wamid and row.send_attempted_at is None


async def test_a_broadcast_chunk_locks_its_messages_in_id_order_to_write_its_outcomes(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    ws, [(low, low_wamid), (high, high_wamid)] = await _two_awaiting_outcome(api, wa, runtime)
    driver = Driver(runtime, uuid.UUID(ws), uuid.uuid4(), utcnow() + timedelta(seconds=30))
    outcomes = []
    for row_id, wamid in ((high, high_wamid), (low, low_wamid)):  # the higher one first
        row = await _row(runtime, str(row_id))
        columns = {column.key: getattr(row, column.key) for column in Message.__table__.columns}
        body = MessageBody(type="text", text=row.text)
        ready = Ready(uuid.uuid4(), uuid.uuid4(), row.conversation_id, CUSTOMER, body, {})
        outcomes.append(sending.Outcome(ready, columns, "sent", wamid))
    async with runtime.db.unit_of_work(system=True) as holder:
        await holder.execute(select(Message.id).where(Message.id == low).with_for_update())
        writing = asyncio.ensure_future(sending._write_outcomes(driver, outcomes))
        await eventually(lambda: _waiting_for_a_lock(runtime))
        assert await _free(runtime, high), "the chunk took the higher row before the lower"
    await writing
    for row_id, wamid in ((low, low_wamid), (high, high_wamid)):
        row = await _row(runtime, str(row_id))
        assert (row.status, row.provider_message_id, row.send_attempted_at) == ("sent", wamid, None)
