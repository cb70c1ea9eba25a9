"""Tenant scoping, in one place, at two levels.

1. `scoped(Model, workspace_id)`: every read of a workspace-scoped table starts here, so
   "which workspace" is decided in exactly one place in the application.
2. On PostgreSQL, row-level security is the second wall: every tenant table has a forced
   policy that shows only rows of the workspace named by the transaction-local setting
   `app.workspace_id` (`enter_workspace`), plus, for memberships, the caller's own rows
   (`enter_user`). A query that forgets (1) still cannot see another tenant's rows.
   System work (commands, migrations, cross-tenant jobs) says so with `enter_system`.

Within a workspace, `visible(Model, reader)` narrows channels, conversations, messages and
templates to the channels a channel-scoped reader (an agent) is assigned to: the one place
that rule is applied to queries.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from botplatform.kit import core
from botplatform.models.audit_log import AuditLog
from botplatform.models.base import WorkspaceScoped, table_of
from botplatform.models.channel import Channel
from botplatform.models.conversation import Conversation
from botplatform.models.message import Message
from botplatform.models.template import MessageTemplate

M = TypeVar("M", bound=WorkspaceScoped)


def scoped(model: type[M], workspace_id: uuid.UUID) -> Select[M]:
    """`SELECT model … WHERE workspace_id = :workspace_id`, ready for more filters."""
    return select(model).where(model.workspace_id == workspace_id)


@cache
def scoped_rows(model: type[M]) -> Select[M]:
    """`scoped`, built once for the hot path: `model`'s objects, the workspace a bound
    parameter (`:workspace_id`, required: a statement run without it fails), so that a
    statement built on it is constructed and keyed once per process, not on every call (as
    `scoped` does: about 0.3 ms a read of a bot batch)."""
    return select(model).where(model.workspace_id == bindparam("workspace_id"))


def scoped_columns(model: type[WorkspaceScoped], *columns: str) -> Select[Any]:
    """`scoped`, built once for the hot path: some columns of `model`'s table (plain Core:
    no ORM entity to load), the workspace a bound parameter (`:workspace_id`), so the
    statement is constructed, keyed and compiled once per process, not on every call."""
    table = table_of(model)
    return select(*(table.c[name] for name in columns)).where(
        table.c.workspace_id == bindparam("workspace_id")
    )


class ChannelReader(Protocol):
    """Who reads: a workspace, and the channels it is limited to (None: every channel).
    `authz.dependencies.WorkspaceAccess` is one."""

    @property
    def workspace_id(self) -> uuid.UUID: ...

    @property
    def channel_ids(self) -> frozenset[uuid.UUID] | None: ...


# The column naming each channel-bound table's channel.
_CHANNEL_COLUMN: dict[type[WorkspaceScoped], InstrumentedAttribute[Any]] = {
    Channel: Channel.id,
    Conversation: Conversation.channel_id,
    Message: Message.channel_id,
    MessageTemplate: MessageTemplate.channel_id,
}


def visible(model: type[M], reader: ChannelReader) -> Select[M]:
    """`scoped(model, …)`, narrowed to the reader's channels when it is limited to some
    (an agent sees only the channels it is assigned to; anything else answers 404)."""
    statement = scoped(model, reader.workspace_id)
    if reader.channel_ids is None:
        return statement
    return statement.where(_CHANNEL_COLUMN[model].in_(reader.channel_ids))


def scoped_audit(model: type[AuditLog], workspace_id: uuid.UUID) -> Select[AuditLog]:
    """The same, for the audit log, whose platform entries have no workspace."""
    return select(model).where(model.workspace_id == workspace_id)


# set_config(..., true) is SET LOCAL: it ends with the transaction, so a pooled connection
# (PgBouncer in transaction mode too) never carries it to the next one. Built once: every
# transaction runs it.
_SET_CONFIG = text("SELECT set_config(:name, :value, true)")


async def _set(db: AsyncSession, name: str, value: str, *, generic_plans: bool = False) -> None:
    if db.get_bind().dialect.name == "postgresql" and not await core.begin_with_setting(
        db, name, value, generic_plans=generic_plans
    ):
        await core.run(db, _SET_CONFIG, {"name": name, "value": value})


async def enter_workspace(
    db: AsyncSession, workspace_id: uuid.UUID, *, generic_plans: bool = False
) -> None:
    """With `generic_plans` (the inbound batch's transaction, `channels.tasks`), PostgreSQL
    runs the transaction's prepared statements on their generic plans, planned once per
    connection, when it opens the transaction here (else it is left as it is). Its
    statements find rows by key or write rows given as arrays (`unnest`); for those the
    server's own choice kept a custom plan, planned again at every execution, since a
    custom plan sees the array's length. Measured (bench/quick.py --flow, 6 msg/s): about
    1 ms less PostgreSQL CPU per message, a sixth of it."""
    await _set(db, "app.workspace_id", str(workspace_id), generic_plans=generic_plans)


async def enter_user(db: AsyncSession, user_id: uuid.UUID) -> None:
    await _set(db, "app.user_id", str(user_id))


async def allow_api_key_lookup(db: AsyncSession, lookup: str) -> None:
    """Lets this transaction read the one API key row with this lookup id (authentication
    happens before the workspace is known)."""
    await _set(db, "app.api_key_lookup", lookup)


async def allow_channel_lookup(db: AsyncSession, channel_id: uuid.UUID) -> None:
    """Lets this transaction read the one channel a provider webhook names."""
    await _set(db, "app.channel_id", str(channel_id))


async def enter_system(db: AsyncSession) -> None:
    await _set(db, "app.bypass_rls", "on")
