"""Per-transaction memos: loaded once, reloaded after the session writes a row of their kind,
gone with the transaction."""

from __future__ import annotations

import uuid

import httpx

from botplatform.kit.memo import remember
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Contact, Conversation
from botplatform.runtime import Runtime
from tests.conftest import Api


async def test_a_memo_lasts_until_its_kind_is_written_or_the_transaction_ends(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = uuid.UUID(await api.create_workspace(owner))
    loads: list[int] = []

    async def load() -> int:
        loads.append(1)
        return len(loads)

    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        assert await remember(db, Contact, ws, load) == 1
        assert await remember(db, Contact, ws, load) == 1  # memoised
        assert await remember(db, Conversation, ws, load) == 2  # another kind, its own memo
        db.add(Contact(workspace_id=ws, name="Ann"))
        await db.flush()  # a contact written: that memo is stale
        assert await remember(db, Contact, ws, load) == 3
        assert await remember(db, Conversation, ws, load) == 2  # untouched kind kept
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        assert await remember(db, Conversation, ws, load) == 4  # a new transaction loads anew
