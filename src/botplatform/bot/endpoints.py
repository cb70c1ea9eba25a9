from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import BotsManage, BotsRead, WorkspaceAccess
from botplatform.bot import repository, service, simulator
from botplatform.bot.schemas import (
    BotCreate,
    BotOut,
    BotUpdate,
    PublishIn,
    SimulateIn,
    SimulateOut,
    VersionOut,
)
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.models import Bot, BotVersion
from botplatform.runtime import RuntimeDep

router = APIRouter(prefix="/workspaces/{ws}", tags=["bots"])


def _user_id(access: WorkspaceAccess) -> uuid.UUID:
    return access.principal.user.id if access.principal.user else access.membership.user_id


@router.get("/bots")
async def list_bots(access: BotsRead, db: DbSession, page: PageQuery) -> Envelope[Page[BotOut]]:
    statement = repository.list_statement(access.workspace_id)
    rows, cursor = await paginate(db, statement, Bot.created_at, Bot.id, page)
    return ok(Page(items=[await service.to_out(db, r[0]) for r in rows], next_cursor=cursor))


@router.post("/bots", status_code=status.HTTP_201_CREATED)
async def create_bot(
    access: BotsManage, body: BotCreate, db: DbSession, audit: Audit
) -> Envelope[BotOut]:
    """Creates a bot with its (draft) flow, validated: a problem answers 422 `flow_invalid`
    with `details` listing each one and the node, edge or trigger it is about."""
    bot = await service.create(db, access.workspace_id, body)
    await audit.log(
        "bot.create",
        workspace_id=access.workspace_id,
        target_type="bot",
        target_id=bot.id,
        changes={"name": bot.name},
    )
    return ok(await service.to_out(db, bot), "Bot created")


@router.get("/bots/{bot_id}")
async def get_bot(access: BotsRead, bot_id: uuid.UUID, db: DbSession) -> Envelope[BotOut]:
    return ok(await service.to_out(db, await repository.get(db, access.workspace_id, bot_id)))


@router.patch("/bots/{bot_id}")
async def update_bot(
    access: BotsManage, bot_id: uuid.UUID, body: BotUpdate, db: DbSession, audit: Audit
) -> Envelope[BotOut]:
    """Edits the bot. A new `flow` is validated and saved as the next draft revision; the
    live version does not change until it is published."""
    bot = await repository.get(db, access.workspace_id, bot_id)
    changes = await service.update(db, bot, body)
    await audit.log(
        "bot.update",
        workspace_id=access.workspace_id,
        target_type="bot",
        target_id=bot.id,
        changes=changes,
    )
    return ok(await service.to_out(db, bot), "Bot updated")


@router.delete("/bots/{bot_id}")
async def delete_bot(
    access: BotsManage, bot_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[None]:
    """Deletes the bot and its versions; its conversations stop running it."""
    bot = await repository.get(db, access.workspace_id, bot_id)
    await db.delete(bot)
    await db.flush()
    await audit.log(
        "bot.delete", workspace_id=access.workspace_id, target_type="bot", target_id=bot_id
    )
    return ok(None, "Bot deleted")


@router.get("/bots/{bot_id}/versions")
async def list_versions(
    access: BotsRead, bot_id: uuid.UUID, db: DbSession, page: PageQuery
) -> Envelope[Page[VersionOut]]:
    bot = await repository.get(db, access.workspace_id, bot_id)
    statement = repository.versions_statement(access.workspace_id, bot.id)
    rows, cursor = await paginate(
        db, statement, BotVersion.created_at, BotVersion.id, page, newest_first=True
    )
    return ok(Page(items=[service.version_out(r[0], bot) for r in rows], next_cursor=cursor))


@router.post("/bots/{bot_id}/versions", status_code=status.HTTP_201_CREATED)
async def publish_bot(
    access: BotsManage, bot_id: uuid.UUID, body: PublishIn, db: DbSession, audit: Audit
) -> Envelope[VersionOut]:
    """Publishes the current flow as the next immutable version. New conversations start on
    it; conversations already running finish on the version they started with."""
    bot = await repository.get(db, access.workspace_id, bot_id)
    version = await service.publish(db, bot, body.note, _user_id(access))
    await audit.log(
        "bot.publish",
        workspace_id=access.workspace_id,
        target_type="bot",
        target_id=bot.id,
        changes={"version": version.number, "draft_revision": version.draft_revision},
    )
    return ok(service.version_out(version, bot), f"Version {version.number} published")


@router.get("/bots/{bot_id}/versions/{version_id}")
async def get_version(
    access: BotsRead, bot_id: uuid.UUID, version_id: uuid.UUID, db: DbSession
) -> Envelope[VersionOut]:
    bot = await repository.get(db, access.workspace_id, bot_id)
    version = await repository.get_version(db, access.workspace_id, bot.id, version_id)
    return ok(service.version_out(version, bot))


@router.post("/bots/{bot_id}/simulate")
async def simulate_bot(
    access: BotsManage,
    bot_id: uuid.UUID,
    body: SimulateIn,
    db: DbSession,
    runtime: RuntimeDep,
    audit: Audit,
) -> Envelope[SimulateOut]:
    """Runs the bot on typed messages without a channel (the dashboard's bot tester): what
    it would send, step by step, and the state it reaches. Nothing is sent or stored; pass
    the answered `state` back to continue the conversation."""
    bot = await repository.get(db, access.workspace_id, bot_id)
    result = await simulator.simulate(runtime, db, bot, body)
    await audit.log(
        "bot.simulate",
        workspace_id=access.workspace_id,
        target_type="bot",
        target_id=bot.id,
        changes={"messages": len(body.messages), "version": str(body.version)},
    )
    return ok(result)
