"""Evaluating every enabled rule of an event, in order, and recording each run.

One event is one transaction: the rules run one after another (each sees what the earlier
ones changed), every action in a savepoint of its own, so a failing action is recorded and
undone while the others stand. Events caused by a rule's actions carry the chain of rules
that led to them; a rule never runs on an event it caused (directly or through other rules),
and a chain longer than AUTOMATION_MAX_CHAIN stops — so rules cannot loop.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.automation import actions as action_handlers
from botplatform.automation import repository
from botplatform.automation.conditions import Subject, evaluate
from botplatform.automation.events import caused_by
from botplatform.automation.schemas import Action
from botplatform.automation.service import STORED_ACTIONS, STORED_CONDITION
from botplatform.business_hours.service import hours_of
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import AppError
from botplatform.kit.logging import get_logger
from botplatform.models import (
    AutomationEvent,
    AutomationRule,
    AutomationRun,
    Contact,
    Conversation,
    Message,
    Workspace,
)
from botplatform.worker.jobs import PENDING_JOBS

log = get_logger("botplatform.automation")


async def load_subject(db: AsyncSession, event: AutomationEvent) -> Subject:
    workspace = await db.get(Workspace, event.workspace_id)
    assert workspace is not None
    message = await db.get(Message, event.message_id) if event.message_id else None
    conversation = (
        await db.get(Conversation, event.conversation_id) if event.conversation_id else None
    )
    contact = await db.get(Contact, event.contact_id) if event.contact_id else None
    return Subject(
        event=event.event,
        at=event.created_at,
        hours=hours_of(workspace),
        channel_id=event.channel_id,
        message=message,
        conversation=conversation,
        contact=contact,
    )


async def _refresh(db: AsyncSession, subject: Subject) -> None:
    """After a savepoint rolled back, reload what it may have expired (an async session
    cannot lazy-load)."""
    for row in (subject.message, subject.conversation, subject.contact):
        if row is not None:
            await db.refresh(row)


async def _run_action(
    db: AsyncSession,
    event: AutomationEvent,
    rule: AutomationRule,
    index: int,
    action: Action,
    subject: Subject,
) -> dict[str, Any]:
    outcome: dict[str, Any] = {"index": index, "type": action.type}
    pending: list[Any] = db.info.setdefault(PENDING_JOBS, [])
    queued = len(pending)
    context = action_handlers.ActionContext(db, event, rule, index, subject)
    savepoint = await db.begin_nested()
    try:
        with caused_by(db, [*event.chain, str(rule.id)]):
            detail = await action_handlers.execute(context, action)
        await savepoint.commit()
    except SQLAlchemyError:
        raise  # the database itself failed: the whole event is retried
    except Exception as exc:
        await savepoint.rollback()
        del pending[queued:]  # jobs the undone action queued must not leave
        await _refresh(db, subject)
        if isinstance(exc, AppError):
            error = {"code": exc.code, "message": exc.message}
        else:  # a bug must not poison the event for the rules after it: logged, recorded
            log.exception("automation_action_crashed", rule_id=str(rule.id), action=action.type)
            error = {"code": "internal_error", "message": "The action failed unexpectedly."}
        return {**outcome, "status": "failed", "error": error}
    return {**outcome, "status": "succeeded", "detail": detail}


async def run_rule(
    db: AsyncSession, event: AutomationEvent, rule: AutomationRule, subject: Subject, max_chain: int
) -> AutomationRun:
    run = AutomationRun(
        workspace_id=event.workspace_id,
        rule_id=rule.id,
        event_id=event.id,
        event=event.event,
        matched=False,
        outcome="not_matched",
        actions=[],
        conversation_id=event.conversation_id,
        contact_id=event.contact_id,
        message_id=event.message_id,
    )
    db.add(run)
    try:
        condition = STORED_CONDITION.validate_python(rule.conditions)
        actions = STORED_ACTIONS.validate_python(rule.actions)
    except ValidationError as exc:
        run.outcome, run.error = "failed", f"the stored rule is no longer valid: {exc}"[:2000]
        await db.flush()
        return run
    subject.notes.clear()
    run.matched = evaluate(condition, subject)
    if subject.notes:
        run.error = "; ".join(subject.notes)[:2000]
    if run.matched and (str(rule.id) in event.chain or len(event.chain) >= max_chain):
        run.outcome = "skipped"
        run.error = (
            "loop guard: this event was caused by this rule's own actions"
            if str(rule.id) in event.chain
            else f"loop guard: this event comes at the end of a chain of {len(event.chain)} rules"
        )
    elif run.matched:
        outcomes = [
            await _run_action(db, event, rule, index, action, subject)
            for index, action in enumerate(actions)
        ]
        run.actions = outcomes
        failed = any(o["status"] == "failed" for o in outcomes)
        run.outcome = "failed" if failed else "succeeded"
    await db.flush()
    return run


async def process(
    db: AsyncSession, workspace_id: uuid.UUID, event_id: uuid.UUID, max_chain: int
) -> int:
    """Runs the rules of one pending event; returns how many ran (0 if already done)."""
    event = await repository.lock_event(db, workspace_id, event_id)
    if event is None or event.status != "pending":
        return 0
    rules = await repository.rules_for(db, workspace_id, event.event)
    subject = await load_subject(db, event)
    for rule in rules:
        run = await run_rule(db, event, rule, subject, max_chain)
        log.info(
            "automation_run",
            rule_id=str(rule.id),
            event_type=event.event,
            matched=run.matched,
            outcome=run.outcome,
        )
    event.status, event.processed_at = "processed", utcnow()
    await db.flush()
    return len(rules)
