"""Rules as JSON: an event, a tree of conditions (`{"all": [...]}` / `{"any": [...]}` groups
around typed leaves) and a list of typed actions. The shapes are checked here; what needs the
database (does this channel, member or team exist) in `automation.validation`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import regex
from pydantic import (
    AfterValidator,
    BaseModel,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

from botplatform.events.catalog import AUTOMATION_TRIGGERS, check_names
from botplatform.kit.schemas import InputModel
from botplatform.message.schemas import MessageBody

# The trigger names come from the one event catalog (the same names webhooks and the live
# socket use); an unknown one is a 422 that lists the valid ones.
EventName = Annotated[
    str,
    AfterValidator(lambda name: check_names([name], AUTOMATION_TRIGGERS)[0]),
    Field(json_schema_extra={"enum": list(AUTOMATION_TRIGGERS)}),
]

Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
AttributeKey = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
]
Scalar = str | int | float | bool | None

# --- conditions ------------------------------------------------------------------------


class MessageContent(InputModel):
    """The message's text (or media caption), compared case-insensitively."""

    type: Literal["message_content"]
    operator: Literal["contains", "not_contains", "equals", "not_equals", "starts_with", "regex"]
    value: Text

    @model_validator(mode="after")
    def _compiles(self) -> MessageContent:
        if self.operator == "regex":
            try:
                regex.compile(self.value, regex.IGNORECASE)
            except regex.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return self


class MessageDirection(InputModel):
    """Inbound (from the contact) or outbound (agent, bot, automation, API)."""

    type: Literal["message_direction"]
    operator: Literal["is"] = "is"
    value: Literal["inbound", "outbound"]


class ChannelIs(InputModel):
    type: Literal["channel"]
    operator: Literal["in", "not_in"] = "in"
    value: list[uuid.UUID] = Field(min_length=1, max_length=50)


class ContactAttribute(InputModel):
    """A contact attribute; text compares case-insensitively, greater/less_than as numbers."""

    type: Literal["contact_attribute"]
    key: AttributeKey
    operator: Literal[
        "equals",
        "not_equals",
        "contains",
        "not_contains",
        "exists",
        "not_exists",
        "greater_than",
        "less_than",
    ]
    value: Scalar = None

    @model_validator(mode="after")
    def _value_fits(self) -> ContactAttribute:
        if self.operator in ("exists", "not_exists"):
            return self
        if self.value is None:
            raise ValueError(f"`value` is required with operator {self.operator!r}")
        numeric = isinstance(self.value, int | float) and not isinstance(self.value, bool)
        if self.operator in ("greater_than", "less_than") and not numeric:
            raise ValueError(f"`value` must be a number with operator {self.operator!r}")
        return self


class ContactTag(InputModel):
    type: Literal["contact_tag"]
    operator: Literal["has", "has_not"] = "has"
    value: Label


class ConversationLabel(InputModel):
    type: Literal["conversation_label"]
    operator: Literal["has", "has_not"] = "has"
    value: Label


class BusinessHoursCondition(InputModel):
    """Whether the event happened within the workspace's business hours (its time zone)."""

    type: Literal["business_hours"]
    operator: Literal["within", "outside"] = "within"


class AllOf(InputModel):
    all: list[Condition] = Field(min_length=1, max_length=20)


class AnyOf(InputModel):
    any: list[Condition] = Field(min_length=1, max_length=20)


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "all" in value:
            return "all"
        if "any" in value:
            return "any"
        kind = value.get("type")
        return kind if isinstance(kind, str) else None
    if isinstance(value, AllOf):
        return "all"
    if isinstance(value, AnyOf):
        return "any"
    return getattr(value, "type", None)


Leaf = (
    MessageContent
    | MessageDirection
    | ChannelIs
    | ContactAttribute
    | ContactTag
    | ConversationLabel
    | BusinessHoursCondition
)
Condition = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[MessageContent, Tag("message_content")]
    | Annotated[MessageDirection, Tag("message_direction")]
    | Annotated[ChannelIs, Tag("channel")]
    | Annotated[ContactAttribute, Tag("contact_attribute")]
    | Annotated[ContactTag, Tag("contact_tag")]
    | Annotated[ConversationLabel, Tag("conversation_label")]
    | Annotated[BusinessHoursCondition, Tag("business_hours")],
    Discriminator(
        _condition_kind,
        custom_error_type="unknown_condition",
        custom_error_message="Give a group ({'all': [...]} or {'any': [...]}) or a condition "
        "type: message_content, message_direction, channel, contact_attribute, contact_tag, "
        "conversation_label, business_hours",
    ),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()

# --- actions ---------------------------------------------------------------------------


class AssignAgent(InputModel):
    type: Literal["assign_agent"]
    user_id: uuid.UUID


class AssignTeam(InputModel):
    """Sets the conversation's team and, with `round_robin`, assigns its next agent."""

    type: Literal["assign_team"]
    team_id: uuid.UUID
    round_robin: bool = True


class AddLabels(InputModel):
    type: Literal["add_label"]
    labels: list[Label] = Field(min_length=1, max_length=20)


class RemoveLabels(InputModel):
    type: Literal["remove_label"]
    labels: list[Label] = Field(min_length=1, max_length=20)


class AddTags(InputModel):
    type: Literal["add_tag"]
    tags: list[Label] = Field(min_length=1, max_length=20)


class RemoveTags(InputModel):
    type: Literal["remove_tag"]
    tags: list[Label] = Field(min_length=1, max_length=20)


class SendMessage(InputModel):
    """Sent to the conversation's contact through the same policy gate as every send."""

    type: Literal["send_message"]
    message: MessageBody


class SendWebhook(InputModel):
    """Emits the `automation.triggered` event to the workspace's webhook endpoints."""

    type: Literal["send_webhook"]
    data: dict[str, Scalar] = Field(default_factory=dict, max_length=20)


class Resolve(InputModel):
    type: Literal["resolve"]


class SetAttribute(InputModel):
    """Sets a contact attribute; `null` (or no `value`) removes it."""

    type: Literal["set_attribute"]
    key: AttributeKey
    value: Scalar = None


Action = Annotated[
    AssignAgent
    | AssignTeam
    | AddLabels
    | RemoveLabels
    | AddTags
    | RemoveTags
    | SendMessage
    | SendWebhook
    | Resolve
    | SetAttribute,
    Field(discriminator="type"),
]

# --- rules -----------------------------------------------------------------------------


class RuleCreate(InputModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    event: EventName
    enabled: bool = True
    position: int = Field(0, ge=0, le=100_000, description="Rules run in ascending position")
    conditions: Condition | None = Field(None, description="None: every event matches")
    actions: list[Action] = Field(min_length=1, max_length=20)


class RuleUpdate(InputModel):
    """Only the fields given change; `"conditions": null` removes the conditions."""

    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        | None
    ) = None
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    event: EventName | None = None
    enabled: bool | None = None
    position: int | None = Field(None, ge=0, le=100_000)
    conditions: Condition | None = None
    actions: list[Action] | None = Field(None, min_length=1, max_length=20)


class RuleOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    event: str
    enabled: bool
    position: int
    conditions: dict[str, Any] | None
    actions: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime


class ActionOutcome(BaseModel):
    index: int
    type: str
    status: Literal["succeeded", "failed"]
    error: dict[str, Any] | None = None
    detail: dict[str, Any] = {}


class RunOut(BaseModel):
    id: uuid.UUID
    rule_id: uuid.UUID
    event_id: uuid.UUID
    event: str
    matched: bool
    outcome: str = Field(
        description="not_matched | skipped (matched, but the loop guard held it back) | "
        "succeeded | failed (an action failed; the others ran)"
    )
    actions: list[ActionOutcome]
    error: str | None
    conversation_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    message_id: uuid.UUID | None
    created_at: datetime
