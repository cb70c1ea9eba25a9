from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import AutomationsManage, ConversationsRead
from botplatform.automation import repository, service
from botplatform.automation.schemas import EventName, RuleCreate, RuleOut, RuleUpdate, RunOut
from botplatform.db import DbSession
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.models import AutomationRule, AutomationRun

router = APIRouter(prefix="/workspaces/{ws}", tags=["automations"])


@router.get("/automations")
async def list_rules(
    access: ConversationsRead,
    db: DbSession,
    page: PageQuery,
    event: Annotated[EventName | None, Query()] = None,
) -> Envelope[Page[RuleOut]]:
    """The workspace's automation rules (oldest first; they run by `position`)."""
    statement = repository.rules(access.workspace_id, event)
    rows, cursor = await paginate(db, statement, AutomationRule.created_at, AutomationRule.id, page)
    return ok(Page(items=[service.to_out(r[0]) for r in rows], next_cursor=cursor))


@router.post("/automations", status_code=status.HTTP_201_CREATED)
async def create_rule(
    access: AutomationsManage, body: RuleCreate, db: DbSession, audit: Audit
) -> Envelope[RuleOut]:
    """A rule: when `event` happens and `conditions` hold, run `actions` in order. A 422
    names each offending condition or action in `details[].field`."""
    user_id = access.principal.user.id if access.principal.user else access.membership.user_id
    rule = await service.create(db, access.workspace_id, body, user_id)
    await audit.log(
        "automation.create",
        workspace_id=access.workspace_id,
        target_type="automation_rule",
        target_id=rule.id,
        changes={"name": rule.name, "event": rule.event},
    )
    return ok(service.to_out(rule), "Automation rule created")


@router.get("/automations/{rule_id}")
async def get_rule(
    access: ConversationsRead, rule_id: uuid.UUID, db: DbSession
) -> Envelope[RuleOut]:
    return ok(service.to_out(await repository.get_rule(db, access.workspace_id, rule_id)))


@router.patch("/automations/{rule_id}")
async def update_rule(
    access: AutomationsManage, rule_id: uuid.UUID, body: RuleUpdate, db: DbSession, audit: Audit
) -> Envelope[RuleOut]:
    """Changes the fields given (e.g. `{"enabled": false}`); the rule is validated whole."""
    rule = await repository.get_rule(db, access.workspace_id, rule_id)
    changes = await service.update(db, rule, body)
    await audit.log(
        "automation.update",
        workspace_id=access.workspace_id,
        target_type="automation_rule",
        target_id=rule.id,
        changes=changes,
    )
    return ok(service.to_out(rule), "Automation rule updated")


@router.delete("/automations/{rule_id}")
async def delete_rule(
    access: AutomationsManage, rule_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[None]:
    """Deletes the rule and its run records."""
    rule = await repository.get_rule(db, access.workspace_id, rule_id)
    await db.delete(rule)
    await db.flush()
    await audit.log(
        "automation.delete",
        workspace_id=access.workspace_id,
        target_type="automation_rule",
        target_id=rule_id,
    )
    return ok(None, "Automation rule deleted")


@router.get("/automations/{rule_id}/runs")
async def list_runs(
    access: ConversationsRead,
    rule_id: uuid.UUID,
    db: DbSession,
    page: PageQuery,
    matched: bool | None = None,
) -> Envelope[Page[RunOut]]:
    """Each time the rule was evaluated (newest first): the event, whether it matched, and
    each action's outcome or error."""
    await repository.get_rule(db, access.workspace_id, rule_id)
    statement = repository.runs(access.workspace_id, rule_id, matched)
    rows, cursor = await paginate(
        db, statement, AutomationRun.created_at, AutomationRun.id, page, newest_first=True
    )
    return ok(Page(items=[service.run_out(r[0]) for r in rows], next_cursor=cursor))
