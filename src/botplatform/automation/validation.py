"""What a rule's shape cannot say alone: that its conditions and actions make sense for its
event, and that the channels, agents and teams it names exist in the workspace. Every problem
is reported at once, each pointing at the offending condition or action."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.authz.permissions import Permission, permissions_of
from botplatform.automation.events import CONTACT_CREATED
from botplatform.automation.schemas import (
    Action,
    AllOf,
    AnyOf,
    AssignAgent,
    AssignTeam,
    ChannelIs,
    Condition,
    ConversationLabel,
    MessageContent,
    MessageDirection,
)
from botplatform.events.catalog import MESSAGE_TRIGGERS
from botplatform.kit.errors import Unprocessable
from botplatform.kit.scoping import scoped
from botplatform.models import Channel, Membership, Team

MAX_DEPTH = 5
MAX_LEAVES = 50
NEEDS_MESSAGE = (MessageContent, MessageDirection)
NEEDS_CONVERSATION_TYPES = frozenset(
    {"assign_agent", "assign_team", "add_label", "remove_label", "send_message", "resolve"}
)


@dataclass
class Problems:
    items: list[dict[str, str]] = field(default_factory=list)

    def add(self, path: str, message: str, kind: str) -> None:
        self.items.append({"field": path, "message": message, "type": kind})


def _leaves(
    condition: Condition, path: str, depth: int, problems: Problems
) -> list[tuple[str, Any]]:
    if depth > MAX_DEPTH:
        problems.add(path, f"groups nest at most {MAX_DEPTH} deep", "too_deep")
        return []
    if isinstance(condition, AllOf | AnyOf):
        key = "all" if isinstance(condition, AllOf) else "any"
        children = condition.all if isinstance(condition, AllOf) else condition.any
        found: list[tuple[str, Any]] = []
        for index, child in enumerate(children):
            found += _leaves(child, f"{path}.{key}.{index}", depth + 1, problems)
        return found
    return [(path, condition)]


async def _check_conditions(
    db: AsyncSession, ws: uuid.UUID, event: str, conditions: Condition | None, problems: Problems
) -> None:
    if conditions is None:
        return
    leaves = _leaves(conditions, "body.conditions", 1, problems)
    if len(leaves) > MAX_LEAVES:
        problems.add("body.conditions", f"at most {MAX_LEAVES} conditions", "too_many")
    for path, leaf in leaves:
        if isinstance(leaf, NEEDS_MESSAGE) and event not in MESSAGE_TRIGGERS:
            problems.add(
                path,
                f"`{leaf.type}` needs a message: only for {' and '.join(sorted(MESSAGE_TRIGGERS))}",
                "event_mismatch",
            )
        if isinstance(leaf, ConversationLabel) and event == CONTACT_CREATED:
            problems.add(path, "contact.created has no conversation", "event_mismatch")
        if isinstance(leaf, ChannelIs):
            known = set(
                (
                    await db.execute(
                        scoped(Channel, ws)
                        .where(Channel.id.in_(leaf.value))
                        .with_only_columns(Channel.id)
                    )
                ).scalars()
            )
            for index, channel_id in enumerate(leaf.value):
                if channel_id not in known:
                    problems.add(f"{path}.value.{index}", "no such channel", "unknown_channel")


async def _check_agent(
    db: AsyncSession, ws: uuid.UUID, user_id: uuid.UUID, path: str, problems: Problems
) -> None:
    membership = (
        await db.execute(scoped(Membership, ws).where(Membership.user_id == user_id))
    ).scalar_one_or_none()
    if membership is None:
        problems.add(f"{path}.user_id", "not a member of this workspace", "unknown_member")
    elif Permission.CONVERSATIONS_REPLY not in permissions_of(membership.role):
        problems.add(
            f"{path}.user_id", f"a {membership.role} cannot work conversations", "not_an_agent"
        )


async def _check_actions(
    db: AsyncSession, ws: uuid.UUID, event: str, actions: list[Action], problems: Problems
) -> None:
    for index, action in enumerate(actions):
        path = f"body.actions.{index}"
        if action.type in NEEDS_CONVERSATION_TYPES and event == CONTACT_CREATED:
            problems.add(
                path,
                f"`{action.type}` needs a conversation; contact.created has none",
                "event_mismatch",
            )
        if isinstance(action, AssignAgent):
            await _check_agent(db, ws, action.user_id, path, problems)
        elif isinstance(action, AssignTeam):
            team = (
                await db.execute(scoped(Team, ws).where(Team.id == action.team_id))
            ).scalar_one_or_none()
            if team is None:
                problems.add(f"{path}.team_id", "no such team", "unknown_team")


async def check_rule(
    db: AsyncSession,
    ws: uuid.UUID,
    event: str,
    conditions: Condition | None,
    actions: list[Action],
) -> None:
    problems = Problems()
    await _check_conditions(db, ws, event, conditions, problems)
    await _check_actions(db, ws, event, actions, problems)
    if problems.items:
        raise Unprocessable(
            "The rule is not valid: see `details` for each offending condition or action.",
            code="invalid_rule",
            details=problems.items,
        )
