"""A send's idempotency key is kept by its unique constraint (`message.service.queue_outbound`
inserts with `ON CONFLICT DO NOTHING`, nothing read first): a repeated request gets its first
message back, never a second row or a second provider send — repeated one after the other,
at the same moment, or after the checks began to refuse. An insert that met its key stores
nothing on either database (`kit.core.insert_loaded`)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from botplatform.models import BotSession, Message
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.bot.helpers import MENU, create_bot, publish
from tests.conftest import Account, Api, eventually, set_quota, sql_statements

CUSTOMER = "15551230000"


async def _setup(api: Api, wa: FakeGraph) -> tuple[Account, str, dict[str, Any], str]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await api.inbound_text(channel["id"], CUSTOMER, "hello", name="Dana")
    conversation = await api.conversation_of(owner, ws, "Dana")
    return (
        owner,
        ws,
        channel,
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
    )


def _send(client: httpx.AsyncClient, owner: Account, url: str, key: str, text: str) -> Any:
    headers = {**owner.headers, "Idempotency-Key": key}
    return client.post(url, json={"text": text}, headers=headers)


async def _sends_stay(wa: FakeGraph, count: int) -> None:
    """`count` provider sends, and no more a moment later (a second send job would be late)."""
    await asyncio.sleep(0.3)
    assert len(wa.sent) == count


async def _rows(runtime: Runtime, **where: Any) -> int:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        statement = select(func.count()).select_from(Message).filter_by(**where)
        return int((await db.execute(statement)).scalar_one())


async def test_a_repeated_send_gets_its_first_message_and_one_provider_call(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, _, _, url = await _setup(api, wa)
    first = await _send(client, owner, url, "k-1", "once")
    assert first.status_code == 201, first.text
    await eventually(lambda: wa.sent)
    again = await _send(client, owner, url, "k-1", "once")
    assert again.status_code == 201, again.text
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert await _rows(runtime, idempotency_key="k-1") == 1
    await _sends_stay(wa, 1)


async def test_a_send_reads_nothing_by_its_key_first(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, _, _, url = await _setup(api, wa)
    with sql_statements(runtime) as seen:
        for key in ("k-6", "k-6"):  # the first and its repeat
            assert (await _send(client, owner, url, key, "hi")).status_code == 201
    by_key = [s for s in seen if s.startswith("select") and "messages.idempotency_key =" in s]
    assert len(by_key) == 1, by_key  # the repeat's, after its insert met the key


async def test_concurrent_repeats_store_one_row_and_all_get_it(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, _, _, url = await _setup(api, wa)
    # The conversation's first replies: they also race to make its bot session.
    answers = await asyncio.gather(*(_send(client, owner, url, "k-2", "race") for _ in range(4)))
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert len({a.json()["data"]["id"] for a in answers}) == 1
    assert await _rows(runtime, idempotency_key="k-2") == 1
    await eventually(lambda: wa.sent)
    await _sends_stay(wa, 1)


async def test_concurrent_first_replies_of_two_agents_are_both_sent(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    """Each makes the conversation's bot session if it has none (the bot stays quiet while a
    human answers); made by its unique key, the second waits for the first's row instead of
    failing on the constraint (it was a 500)."""
    owner, _, _, url = await _setup(api, wa)
    texts = [f"agent {n}" for n in range(4)]
    answers = await asyncio.gather(*(_send(client, owner, url, f"a-{t}", t) for t in texts))
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    await eventually(lambda: len(wa.sent) >= 4)
    await _sends_stay(wa, 4)
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        sessions = await db.execute(select(func.count()).select_from(BotSession))
        assert sessions.scalar_one() == 1


async def test_a_refusal_stores_nothing_and_a_repeat_after_it_gets_the_first_message(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, _, _, url = await _setup(api, wa)
    await set_quota(runtime, "starter", messages_per_month=1)  # the inbound "hello" spent it
    refused = await _send(client, owner, url, "k-3", "not yet")
    assert refused.status_code == 402, refused.text
    assert await _rows(runtime, idempotency_key="k-3") == 0
    await set_quota(runtime, "starter", messages_per_month=None)
    first = await _send(client, owner, url, "k-3", "not yet")  # the key was not taken
    assert first.status_code == 201, first.text
    await eventually(lambda: wa.sent)

    await set_quota(runtime, "starter", messages_per_month=1)  # the checks refuse now…
    again = await _send(client, owner, url, "k-3", "not yet")
    assert again.status_code == 201, again.text  # …but the key names a message already
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    other = await _send(client, owner, url, "k-4", "new")
    assert other.status_code == 402, other.text  # a new key is refused as before
    assert await _rows(runtime, idempotency_key="k-3") == 1
    await _sends_stay(wa, 1)


async def test_a_redelivered_inbound_message_is_stored_and_answered_once(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    """A live bot's channel takes the per-item path (`record_inbound`): the same provider id
    in a second, different webhook is a duplicate there too. On SQLite the insert-once helper
    once read an empty result as a row (`if not result.scalars()`: a result object is truthy),
    so the bot answered the duplicate again."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await publish(api, owner, ws, (await create_bot(api, owner, ws, MENU))["id"])
    wamid = await api.inbound_text(channel["id"], CUSTOMER, "menu", name="Dana")
    await eventually(lambda: wa.sent)
    # Another body (so not the same webhook), the same message id.
    await api.inbound_text(channel["id"], CUSTOMER, "menu", name="Dana B.", message_id=wamid)
    await api.inbound_text(channel["id"], CUSTOMER, "menu", name="Dana")  # a new message
    await eventually(lambda: len(wa.sent) >= 2)
    await _sends_stay(wa, 2)
    assert await _rows(runtime, provider_message_id=wamid) == 1
    assert await _rows(runtime, direction="inbound") == 2


async def test_a_second_resend_click_queues_no_second_resend(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    """`resend` keys its send `resend:<failed id>`: the second click meets the key."""
    owner, ws, _, url = await _setup(api, wa)
    wa.fail_next(400, 131026, times=1)  # undeliverable: failed for good
    sent = await _send(client, owner, url, "k-5", "again?")
    failed_id = sent.json()["data"]["id"]

    async def failed() -> bool:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            row = await db.get(Message, uuid.UUID(failed_id))
            return row is not None and row.status == "failed"

    await eventually(failed)
    resend = f"/api/v1/workspaces/{ws}/messages/{failed_id}/resend"
    clicks = [await client.post(resend, headers=owner.headers) for _ in range(2)]
    assert [c.status_code for c in clicks] == [201, 201], [c.text for c in clicks]
    assert clicks[0].json()["data"]["id"] == clicks[1].json()["data"]["id"]
    assert await _rows(runtime, idempotency_key=f"resend:{failed_id}") == 1
    await eventually(lambda: wa.sent)
    await _sends_stay(wa, 1)
