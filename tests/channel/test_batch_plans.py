"""The inbound batch's transaction runs its prepared statements on generic plans
(PostgreSQL): its statements find rows by key or write rows given as arrays, and the
server's own choice re-planned those at every execution (`scoping.enter_workspace`). The
setting is the transaction's own (SET LOCAL): the connection goes back to the pool without it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text

from botplatform.channels import batch
from botplatform.runtime import Runtime
from botplatform.sandbox.whatsapp import FakeGraph
from tests.channel.test_batch_equivalence import AUTO_REPLY, _run, _settled, _store, _text
from tests.conftest import Api, eventually

_PLANS = text("SELECT current_setting('plan_cache_mode')")


async def test_the_inbound_batch_plans_once_and_leaves_the_connection_as_it_was(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    if runtime.db.dialect != "postgresql":
        pytest.skip("plan_cache_mode is PostgreSQL's")
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws, auto_reply=AUTO_REPLY)
    seen: list[str] = []
    pending_events = batch.pending_events

    async def watched(db: Any, *args: Any) -> Any:
        seen.append((await db.execute(_PLANS)).scalar_one())
        return await pending_events(db, *args)

    monkeypatch.setattr(batch, "pending_events", watched)
    bodies = [_text("15550020", "hi", "Cy", "wamid.P1", int(time.time()))]
    ids = await _store(runtime, ws, channel["id"], bodies)
    await _run(runtime, "process_inbound_events", ws, ids)
    await eventually(lambda: _settled(runtime, ws))

    assert seen == ["force_generic_plan"]
    async with runtime.db.unit_of_work(write=False) as db:  # the pool's next transaction
        assert (await db.execute(_PLANS)).scalar_one() == "auto"
