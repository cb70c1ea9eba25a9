"""The hot path's cheap ORM objects and statements: `core.instance` makes an object from a
row without the constructor's attribute events, yet behaves as `Model(**row)` does where it
matters (its values, a change made to it later); `bot.runner.store_state` sets only what a
turn changed, so an unchanged run leaves its session row clean; `scoping.scoped_rows` is
built once and cannot run without its workspace."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import ArgumentError, StatementError

from botplatform.bot.runner import store_state, to_state
from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import scoped_rows
from botplatform.models import BotSession, Message
from botplatform.runtime import Runtime
from tests.conftest import Api


def _message_row() -> dict[str, object]:
    now = utcnow()
    return core.complete_row(
        Message,
        {
            "id": uuid.uuid4(),
            "workspace_id": uuid.uuid4(),
            "conversation_id": uuid.uuid4(),
            "channel_id": uuid.uuid4(),
            "direction": "outbound",
            "type": "text",
            "text": "Hello",
            "content": {"request": {"type": "text", "text": "Hello"}},
            "status": "queued",
            "created_at": now,
            "updated_at": now,
        },
    )


def test_an_instance_holds_its_row_like_the_constructor_and_tracks_later_changes() -> None:
    row = _message_row()
    made = core.instance(Message, row)
    built = Message(**row)
    for key in row:
        assert getattr(made, key) == getattr(built, key) == row[key]
    state = inspect(made)
    assert state.transient and not state.committed_state  # nothing recorded as changed
    made.status = "sent"
    history = state.attrs.status.history
    assert history.added == ["sent"] and history.deleted == ["queued"]


async def test_as_loaded_is_a_clean_object_of_the_session(api: Api, runtime: Runtime) -> None:
    owner = await api.register()
    ws = uuid.UUID(await api.create_workspace(owner, "Plain objects"))
    async with runtime.db.unit_of_work(system=True) as db:
        row = core.complete_row(
            BotSession,
            {
                "id": uuid.uuid4(),
                "workspace_id": ws,
                "conversation_id": uuid.uuid4(),
                "status": "idle",
                "variables": {},
                "attempts": 0,
                "step": 0,
                "created_at": utcnow(),
                "updated_at": utcnow(),
            },
        )
        loaded = core.as_loaded(db, BotSession, row)
        assert loaded in db and loaded not in db.new and loaded not in db.dirty
        assert inspect(loaded).persistent
        assert loaded.status == "idle" and loaded.variables == {}

        # A state stored unchanged changes nothing: the batch's write has nothing to examine.
        store_state(loaded, to_state(loaded))
        assert loaded not in db.dirty and not inspect(loaded).committed_state
        state = to_state(loaded)
        state.step, state.variables = 1, {"email": "a@example.com"}
        store_state(loaded, state)
        assert loaded in db.dirty
        assert set(inspect(loaded).committed_state) == {"step", "variables"}
        assert loaded.variables == {"email": "a@example.com"}
        assert loaded.variables is not state.variables  # a new object: the JSON column sees it
        await db.rollback()


def test_scoped_rows_is_built_once_and_needs_its_workspace() -> None:
    assert scoped_rows(BotSession) is scoped_rows(BotSession)
    compiled = scoped_rows(BotSession).compile()
    assert "workspace_id" in compiled.params and compiled.params["workspace_id"] is None
    assert compiled.binds["workspace_id"].required


async def test_scoped_rows_without_its_workspace_fails(runtime: Runtime) -> None:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        with pytest.raises((StatementError, ArgumentError)):
            await db.execute(scoped_rows(BotSession))
