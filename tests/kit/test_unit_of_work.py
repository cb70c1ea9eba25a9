"""A unit of work keeps the rows it loaded or stored: a later `get` of one in the same
transaction is answered from memory, even after the code that loaded it has let it go."""

from __future__ import annotations

import gc
import uuid
from typing import Any

import httpx
from sqlalchemy import event, select

from botplatform.kit.scoping import enter_workspace, scoped
from botplatform.models import Contact
from botplatform.runtime import Runtime
from tests.conftest import Api


async def test_a_row_let_go_of_is_not_read_again_in_the_same_unit_of_work(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = uuid.UUID(await api.create_workspace(owner))
    selects: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT CONTACTS"):
            selects.append(statement)

    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        stored = Contact(id=uuid.uuid4(), workspace_id=ws, name="Stored")
        db.add(stored)
        await db.flush()
        stored_id = stored.id
        del stored
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        new = Contact(id=uuid.uuid4(), workspace_id=ws, name="New")
        db.add(new)
        await db.flush()
        new_id = new.id
        del new
        loaded_id = (
            (await db.execute(scoped(Contact, ws).where(Contact.id == stored_id))).scalar_one().id
        )
        gc.collect()  # nothing outside the session refers to either row now
        event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", count)
        try:
            again = await db.get(Contact, loaded_id)
            fresh = await db.get(Contact, new_id)
        finally:
            event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", count)
        assert again is not None and again.name == "Stored"
        assert fresh is not None and fresh.name == "New"
        assert selects == []
    # Another transaction still reads the database, not the last one's memory.
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, ws)
        names = (await db.execute(select(Contact.name).where(Contact.workspace_id == ws))).all()
        assert sorted(name for (name,) in names) == ["New", "Stored"]
