"""`core.together`: independent writes in one round trip on PostgreSQL, also when one
leaves `updated_at` to its column's Python-side `onupdate` (`kit.core` computes it). A write
that cannot take `kit.core`'s fast path (an expanding `IN`) still runs (the group goes one
statement at a time), and is said in the log, once per statement: that costs every unit of
work that sends it round trips."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from sqlalchemy import bindparam, update

from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.models import Workspace
from botplatform.models.base import table_of
from botplatform.runtime import Runtime
from tests.conftest import Api, driver_statements

_WORKSPACES = table_of(Workspace)
# `updated_at` left to the column's Python-side `onupdate`: computed by `kit.core`.
_RENAME = (
    update(_WORKSPACES)
    .where(_WORKSPACES.c.id == bindparam("ws"))
    .values(name=bindparam("new_name"))
)
# An expanding `IN`: one statement per list length, which the fast path does not take.
_RENAME_AMONG = (
    update(_WORKSPACES)
    .where(_WORKSPACES.c.id.in_(bindparam("ids", expanding=True)))
    .values(name=bindparam("new_name"))
)
_GIVEN_NOW = (
    update(_WORKSPACES)
    .where(_WORKSPACES.c.id == bindparam("ws"))
    .values(name=bindparam("new_name"), updated_at=bindparam("now"))
)


async def _rows(runtime: Runtime, ids: list[uuid.UUID]) -> list[Any]:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        rows = await db.execute(
            _WORKSPACES.select().where(_WORKSPACES.c.id.in_(ids)).order_by(_WORKSPACES.c.name)
        )
        return list(rows)


async def _names(runtime: Runtime, ids: list[uuid.UUID]) -> list[str]:
    return [row.name for row in await _rows(runtime, ids)]


async def test_writes_go_together_and_one_off_the_fast_path_is_said_once(
    api: Api, runtime: Runtime, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.register()
    ids = [uuid.UUID(await api.create_workspace(owner, f"Together {n}")) for n in range(2)]
    before = {row.id: row.updated_at for row in await _rows(runtime, ids)}
    caplog.set_level(logging.WARNING)
    now = utcnow()
    with driver_statements(monkeypatch) as sent:
        async with runtime.db.unit_of_work(system=True) as db:
            await core.together(
                db,
                [
                    (_RENAME, {"ws": ids[0], "new_name": "Together A"}),
                    (_GIVEN_NOW, {"ws": ids[1], "new_name": "Together B", "now": now}),
                ],
            )
    rows = await _rows(runtime, ids)
    assert [row.name for row in rows] == ["Together A", "Together B"]
    assert rows[0].updated_at > before[ids[0]]  # the `onupdate`, computed
    said = [r for r in caplog.records if "together_off_fast_path" in r.getMessage()]
    assert said == []
    if runtime.db.dialect == "postgresql":
        writes = [sql for sql in sent if "UPDATE workspaces" in sql]  # (not the bypass)
        assert len(writes) == 1 and writes[0].startswith("WITH w0 AS"), sent

    for round_ in range(2):
        async with runtime.db.unit_of_work(system=True) as db:
            await core.together(
                db,
                [
                    (_RENAME_AMONG, {"ids": [ids[0]], "new_name": f"Together C{round_}"}),
                    (_GIVEN_NOW, {"ws": ids[1], "new_name": f"Together D{round_}", "now": now}),
                ],
            )
    assert await _names(runtime, ids) == ["Together C1", "Together D1"]  # still written
    said = [r for r in caplog.records if "together_off_fast_path" in r.getMessage()]
    if runtime.db.dialect == "postgresql":
        assert len(said) == 1 and "UPDATE workspaces" in said[0].getMessage(), said
    else:  # SQLite runs every group one statement at a time: nothing to say
        assert said == []
