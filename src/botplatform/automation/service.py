"""Automation rules: saving them (validated) and presenting them. Flushes, never commits."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.automation import validation
from botplatform.automation.schemas import (
    Action,
    ActionOutcome,
    Condition,
    RuleCreate,
    RuleOut,
    RuleUpdate,
    RunOut,
)
from botplatform.kit.errors import Conflict
from botplatform.kit.scoping import scoped
from botplatform.models import AutomationRule, AutomationRun

#: Every event is evaluated against every enabled rule of its type: keep that bounded.
MAX_RULES = 200

STORED_CONDITION: TypeAdapter[Condition | None] = TypeAdapter(Condition | None)
STORED_ACTIONS: TypeAdapter[list[Action]] = TypeAdapter(list[Action])
FIELDS = ("name", "description", "event", "enabled", "position", "conditions", "actions")


def _dump_conditions(body: RuleCreate | RuleUpdate) -> dict[str, Any] | None:
    if body.conditions is None:
        return None
    dumped: dict[str, Any] = body.model_dump(mode="json", exclude_none=True, include={"conditions"})
    return dumped.get("conditions")


def _dump_actions(body: RuleCreate | RuleUpdate) -> list[dict[str, Any]]:
    dumped: list[dict[str, Any]] = body.model_dump(
        mode="json", exclude_none=True, include={"actions"}
    )["actions"]
    return dumped


def to_out(rule: AutomationRule) -> RuleOut:
    return RuleOut.model_validate(rule, from_attributes=True)


def run_out(run: AutomationRun) -> RunOut:
    return RunOut(
        id=run.id,
        rule_id=run.rule_id,
        event_id=run.event_id,
        event=run.event,
        matched=run.matched,
        outcome=run.outcome,
        actions=[ActionOutcome.model_validate(a) for a in run.actions or []],
        error=run.error,
        conversation_id=run.conversation_id,
        contact_id=run.contact_id,
        message_id=run.message_id,
        created_at=run.created_at,
    )


async def create(
    db: AsyncSession, workspace_id: uuid.UUID, body: RuleCreate, user_id: uuid.UUID | None
) -> AutomationRule:
    count = (
        await db.execute(
            scoped(AutomationRule, workspace_id).with_only_columns(func.count(AutomationRule.id))
        )
    ).scalar_one()
    if count >= MAX_RULES:
        raise Conflict(
            f"A workspace has at most {MAX_RULES} automation rules; delete one first.",
            code="too_many_rules",
        )
    await validation.check_rule(db, workspace_id, body.event, body.conditions, body.actions)
    rule = AutomationRule(
        workspace_id=workspace_id,
        name=body.name,
        description=body.description,
        event=body.event,
        enabled=body.enabled,
        position=body.position,
        conditions=_dump_conditions(body),
        actions=_dump_actions(body),
        created_by_id=user_id,
    )
    db.add(rule)
    await db.flush()
    return rule


async def update(db: AsyncSession, rule: AutomationRule, body: RuleUpdate) -> dict[str, Any]:
    """Applies the fields given; the whole rule is validated again as it will be."""
    given = body.model_fields_set
    event = body.event if body.event is not None else rule.event
    conditions = (
        body.conditions
        if "conditions" in given
        else STORED_CONDITION.validate_python(rule.conditions)
    )
    actions = (
        body.actions if body.actions is not None else STORED_ACTIONS.validate_python(rule.actions)
    )
    await validation.check_rule(db, rule.workspace_id, event, conditions, actions)
    before = {field: getattr(rule, field) for field in FIELDS}
    for field in ("name", "description", "event", "enabled", "position"):
        value = getattr(body, field)
        if field in given and value is not None:
            setattr(rule, field, value)
    if "conditions" in given:
        rule.conditions = _dump_conditions(body)
    if body.actions is not None:
        rule.actions = _dump_actions(body)
    await db.flush()
    return {
        field: {"before": value, "after": getattr(rule, field)}
        for field, value in before.items()
        if value != getattr(rule, field)
    }
