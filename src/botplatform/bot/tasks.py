"""The bot's jobs: go on after a delay, make a flow's outside call (HTTP, AI) outside any
transaction, and give idle handed-off conversations back. Rows are the truth: a job carries
the session id and the run's step, and does nothing if the run has moved on; the sweeper
re-sends a delay or call whose job was lost (a restart), so a delay survives one."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, func, select

from botplatform.bot import repository
from botplatform.bot.engine import Contact as ContactView
from botplatform.bot.engine import Outcome, State, scope_of
from botplatform.bot.flow import Flow
from botplatform.bot.runner import (
    EXTERNAL_JOB,
    RESUME_JOB,
    continue_run,
    give_back,
    idle_expired,
    make_call,
    to_state,
)
from botplatform.kit.clock import utcnow
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace
from botplatform.models import BotSession, Contact, Conversation
from botplatform.worker.jobs import JobContext, enqueue, job
from botplatform.worker.sweeper import SweepTarget, sweep_target

log = get_logger("botplatform.bot")
RELEASE_JOB = "release_idle_handoffs"
BATCH = 500


def _step(step: str | None) -> int | None:
    return int(step) if step not in (None, "") else None


@job(RESUME_JOB, max_retries=10, min_backoff_ms=1_000)
async def bot_resume(
    ctx: JobContext, workspace_id: str, session_id: str, step: str | None = None
) -> None:
    ws = uuid.UUID(workspace_id)
    await enter_workspace(ctx.db, ws)
    session = await repository.get_session(ctx.db, ws, uuid.UUID(session_id))
    if session is None or session.waiting != "delay" or session.resume_at is None:
        return
    early = (session.resume_at - utcnow()).total_seconds()
    if early > 1:  # the sweeper or a clock skew brought it too soon: wait the rest
        enqueue(ctx.db, RESUME_JOB, workspace_id, session_id, step, delay_ms=int(early * 1000))
        return
    await continue_run(ctx.runtime, ctx.db, ws, session.id, _step(step), "delay", None)


@job(EXTERNAL_JOB, max_retries=3, min_backoff_ms=2_000)
async def bot_external(
    ctx: JobContext, workspace_id: str, session_id: str, step: str | None = None
) -> None:
    """Reads what the call needs, commits, calls (HTTP request or AI answer), then goes on
    with the run in a new transaction."""
    ws = uuid.UUID(workspace_id)
    await enter_workspace(ctx.db, ws)
    session = await repository.get_session(ctx.db, ws, uuid.UUID(session_id))
    if session is None or session.waiting != "external" or session.version_id is None:
        return
    wanted = _step(step)
    if wanted is not None and session.step != wanted:
        return
    version = await repository.find_version(ctx.db, ws, session.version_id)
    conversation = await ctx.db.get(Conversation, session.conversation_id)
    contact = await ctx.db.get(Contact, conversation.contact_id) if conversation else None
    if version is None or contact is None or session.node_id is None:
        return
    flow = Flow.load(version.flow)
    state: State = to_state(session)
    view = ContactView(contact.name, dict(contact.attributes or {}))
    scope = scope_of(view, state)
    node, row_id, at_step = flow.nodes[session.node_id], session.id, session.step
    await ctx.db.commit()  # nothing held open across the outside call
    try:
        outcome = await make_call(ctx.runtime, ws, node, scope)
    except Exception as exc:  # whatever broke, the run goes on by its error/fallback port
        log.exception("bot_call_failed", session_id=session_id)
        if node["type"] == "http_request":
            outcome = Outcome("error", {"http_status": 0, "http_error": "call failed"})
        else:
            outcome = Outcome("fallback", error=f"call failed: {type(exc).__name__}")
    async with ctx.runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        await continue_run(ctx.runtime, db, ws, row_id, at_step, "external", outcome)


@job(RELEASE_JOB, max_retries=0, system=True)
async def release_idle_handoffs(ctx: JobContext) -> None:
    """Gives back to the bot the handed-off conversations whose agents have gone quiet for
    longer than the bot's idle time (the check on the next inbound message does the same;
    this makes the inbox show it without waiting for one)."""
    statement = (
        select(BotSession)
        .where(BotSession.status == "handoff")
        .order_by(func.coalesce(BotSession.human_at, BotSession.handoff_at))
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    for session in (await ctx.db.execute(statement)).scalars().all():
        if not await idle_expired(ctx.runtime, ctx.db, session):
            continue
        conversation = await ctx.db.get(Conversation, session.conversation_id)
        if conversation is not None:
            give_back(session, conversation)


sweep_target(
    SweepTarget(
        name="bot_delays",
        model=BotSession,
        is_pending=lambda: and_(BotSession.waiting == "delay", BotSession.resume_at <= utcnow()),
        touched_at=BotSession.updated_at,
        job=RESUME_JOB,
        with_workspace=True,
    )
)
sweep_target(
    SweepTarget(
        name="bot_calls",
        model=BotSession,
        is_pending=lambda: BotSession.waiting == "external",
        touched_at=BotSession.updated_at,
        job=EXTERNAL_JOB,
        with_workspace=True,
    )
)
