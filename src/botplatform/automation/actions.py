"""What a matched rule does, one action at a time. Each returns a small detail for the run
record, or raises an `AppError` whose code and message the run record keeps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.authz.permissions import Permission, permissions_of
from botplatform.automation.conditions import Subject
from botplatform.automation.schemas import (
    Action,
    AddLabels,
    AddTags,
    AssignAgent,
    AssignTeam,
    RemoveLabels,
    RemoveTags,
    Resolve,
    SendMessage,
    SendWebhook,
    SetAttribute,
)
from botplatform.conversation import service as conversations
from botplatform.events import payloads
from botplatform.events.service import emit
from botplatform.kit.errors import Unprocessable
from botplatform.kit.scoping import scoped
from botplatform.message import service as messages
from botplatform.models import (
    AutomationEvent,
    AutomationRule,
    Channel,
    Contact,
    Conversation,
    Membership,
    Team,
)
from botplatform.team import service as teams

WEBHOOK_EVENT = "automation.triggered"


class ActionFailed(Unprocessable):
    code = "action_failed"


@dataclass
class ActionContext:
    db: AsyncSession
    event: AutomationEvent
    rule: AutomationRule
    index: int
    subject: Subject

    def conversation(self) -> Conversation:
        if self.subject.conversation is None:
            raise ActionFailed("This event has no conversation.", code="no_conversation")
        return self.subject.conversation

    def contact(self) -> Contact:
        if self.subject.contact is None:
            raise ActionFailed("This event has no contact.", code="no_contact")
        return self.subject.contact


def _merge(current: list[str] | None, add: list[str], remove: list[str]) -> list[str]:
    gone = {r.casefold() for r in remove}
    result = [v for v in current or [] if v.casefold() not in gone]
    for value in add:
        if value.casefold() not in {v.casefold() for v in result}:
            result.append(value)
    return result


async def _assigned(ctx: ActionContext, conversation: Conversation, previous: Any) -> None:
    """Tells webhooks and dashboards, as an agent's own assignment does."""
    if conversation.assignee_id != previous:
        data = payloads.conversation_event(
            conversation, previous_assignee_id=str(previous) if previous else None
        )
        await emit(ctx.db, conversation.workspace_id, "conversation.assigned", data)


async def _assign_agent(ctx: ActionContext, action: AssignAgent) -> dict[str, Any]:
    conversation = ctx.conversation()
    membership = (
        await ctx.db.execute(
            scoped(Membership, ctx.event.workspace_id).where(Membership.user_id == action.user_id)
        )
    ).scalar_one_or_none()
    if membership is None or Permission.CONVERSATIONS_REPLY not in permissions_of(membership.role):
        raise ActionFailed(
            "The agent is no longer a member who can work conversations.", code="agent_unavailable"
        )
    previous, conversation.assignee_id = conversation.assignee_id, action.user_id
    await _assigned(ctx, conversation, previous)
    return {"assignee_id": str(action.user_id)}


async def _assign_team(ctx: ActionContext, action: AssignTeam) -> dict[str, Any]:
    conversation = ctx.conversation()
    ws = ctx.event.workspace_id
    team = (
        await ctx.db.execute(scoped(Team, ws).where(Team.id == action.team_id))
    ).scalar_one_or_none()
    if team is None:
        raise ActionFailed("The team no longer exists.", code="team_not_found")
    conversation.team_id = team.id
    detail: dict[str, Any] = {"team_id": str(team.id)}
    if action.round_robin:
        user_id = await teams.pick_round_robin(ctx.db, ws, team.id)
        previous, conversation.assignee_id = conversation.assignee_id, user_id
        await _assigned(ctx, conversation, previous)
        detail["assignee_id"] = str(user_id)
    return detail


async def _labels(ctx: ActionContext, action: AddLabels | RemoveLabels) -> dict[str, Any]:
    conversation = ctx.conversation()
    add, remove = (action.labels, []) if isinstance(action, AddLabels) else ([], action.labels)
    conversation.labels = _merge(conversation.labels, add, remove)
    return {"labels": conversation.labels}


async def _tags(ctx: ActionContext, action: AddTags | RemoveTags) -> dict[str, Any]:
    contact = ctx.contact()
    add, remove = (action.tags, []) if isinstance(action, AddTags) else ([], action.tags)
    contact.tags = _merge(contact.tags, add, remove)
    return {"tags": contact.tags}


async def _send_message(ctx: ActionContext, action: SendMessage) -> dict[str, Any]:
    conversation, contact = ctx.conversation(), ctx.contact()
    channel = await ctx.db.get(Channel, conversation.channel_id)
    if channel is None:
        raise ActionFailed("The conversation's channel is gone.", code="channel_not_found")
    message = await messages.queue_outbound(
        ctx.db,
        channel=channel,
        contact=contact,
        conversation=conversation,
        body=action.message,
        # One logical send per (event, rule, action): a re-run finds the first message.
        idempotency_key=f"automation:{ctx.event.id}:{ctx.rule.id}:{ctx.index}",
        sender_user_id=None,
    )
    return {"message_id": str(message.id)}


async def _send_webhook(ctx: ActionContext, action: SendWebhook) -> dict[str, Any]:
    subject = ctx.subject
    conversation, contact, message = subject.conversation, subject.contact, subject.message
    data = {
        "rule": {"id": str(ctx.rule.id), "name": ctx.rule.name},
        "trigger": {"event_id": str(ctx.event.id), "type": ctx.event.event},
        "conversation": payloads.conversation(conversation) if conversation else None,
        "contact": payloads.contact(contact) if contact else None,
        "message": payloads.message(message, contact.id if contact else None) if message else None,
        "data": action.data,
    }
    await emit(ctx.db, ctx.event.workspace_id, WEBHOOK_EVENT, data)
    return {"event_type": WEBHOOK_EVENT}


async def _resolve(ctx: ActionContext, action: Resolve) -> dict[str, Any]:
    conversation = ctx.conversation()
    if conversation.status != "resolved":
        await conversations.set_status(ctx.db, conversation, "resolved")
        await emit(
            ctx.db,
            conversation.workspace_id,
            "conversation.resolved",
            payloads.conversation_event(conversation),
        )
    return {"status": conversation.status}


async def _set_attribute(ctx: ActionContext, action: SetAttribute) -> dict[str, Any]:
    contact = ctx.contact()
    attributes = dict(contact.attributes or {})
    if action.value is None:
        attributes.pop(action.key, None)
    else:
        attributes[action.key] = action.value
    contact.attributes = attributes  # a new dict: JSON columns do not track in-place changes
    return {"key": action.key, "value": action.value}


Handler = Callable[[ActionContext, Any], Awaitable[dict[str, Any]]]
HANDLERS: dict[str, Handler] = {
    "assign_agent": _assign_agent,
    "assign_team": _assign_team,
    "add_label": _labels,
    "remove_label": _labels,
    "add_tag": _tags,
    "remove_tag": _tags,
    "send_message": _send_message,
    "send_webhook": _send_webhook,
    "resolve": _resolve,
    "set_attribute": _set_attribute,
}


async def execute(ctx: ActionContext, action: Action) -> dict[str, Any]:
    detail = await HANDLERS[action.type](ctx, action)
    await ctx.db.flush()
    return detail
