from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from botplatform.channels.messages import Capability
from botplatform.kit.schemas import InputModel

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Description = Annotated[str, StringConstraints(max_length=500)]
IdleMinutes = Annotated[int, Field(ge=0, le=60 * 24 * 30)]

FLOW_DOC = (
    "The flow graph: `triggers`, `nodes`, `edges` (see docs/api.md). Validated on save; "
    "a problem answers 422 `flow_invalid` with one entry per problem naming its node, edge "
    "or trigger."
)


class BotCreate(InputModel):
    name: Name
    description: Description = ""
    enabled: bool = True
    channel_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=50, description="Channels served; empty = all"
    )
    handoff_idle_minutes: IdleMinutes | None = Field(
        None,
        description="After this long without an agent's message the bot takes back a "
        "handed-off conversation (0 = never; empty = the platform default)",
    )
    flow: dict[str, Any] = Field(default_factory=dict, description=FLOW_DOC)


class BotUpdate(InputModel):
    name: Name | None = None
    description: Description | None = None
    enabled: bool | None = None
    channel_ids: list[uuid.UUID] | None = Field(None, max_length=50)
    handoff_idle_minutes: IdleMinutes | None = None
    default_handoff_idle: bool = Field(
        False, description="Go back to the platform default idle time"
    )
    flow: dict[str, Any] | None = Field(None, description=FLOW_DOC)


class BotOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    enabled: bool
    channel_ids: list[str]
    handoff_idle_minutes: int | None
    flow: dict[str, Any]
    draft_revision: int
    published_version_id: uuid.UUID | None
    published_version: int | None = None
    created_at: datetime
    updated_at: datetime


class PublishIn(InputModel):
    note: Description = ""


class VersionOut(BaseModel):
    id: uuid.UUID
    bot_id: uuid.UUID
    number: int
    draft_revision: int
    note: str
    flow: dict[str, Any]
    published_by_id: uuid.UUID | None
    created_at: datetime
    is_live: bool = False


class SimulatedMessage(InputModel):
    text: Annotated[str, StringConstraints(max_length=4096)] | None = None
    payload: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        None, description="A button or list-row id, as if the customer tapped it"
    )

    @model_validator(mode="after")
    def _something(self) -> SimulatedMessage:
        if not self.text and not self.payload:
            raise ValueError("give `text` or `payload`")
        return self


class SimulatedContact(InputModel):
    name: Annotated[str, StringConstraints(max_length=200)] = "Test Customer"
    attributes: dict[str, Any] = Field(default_factory=dict)


class SimulatedState(InputModel):
    """The `state` a previous simulation answered, to continue that conversation."""

    status: Literal["idle", "running", "finished", "handoff"] = "idle"
    version_id: str | None = None
    node_id: Annotated[str, StringConstraints(max_length=100)] | None = None
    waiting: Literal["input", "delay", "external"] | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    attempts: int = Field(0, ge=0, le=100)
    step: int = Field(0, ge=0)
    last_input: Annotated[str, StringConstraints(max_length=4096)] | None = None


class SimulateIn(InputModel):
    messages: list[SimulatedMessage] = Field(min_length=1, max_length=20)
    version: Literal["draft", "published"] | int = Field(
        "draft", description="`draft` (the flow being edited), `published`, or a number"
    )
    contact: SimulatedContact = Field(default_factory=SimulatedContact)
    state: SimulatedState | None = None
    new_conversation: bool = Field(
        True, description="Whether the first message opens a new conversation"
    )
    capabilities: list[Capability] | None = Field(
        None, description="What the simulated channel shows (default: everything WhatsApp does)"
    )
    now: datetime | None = Field(None, description="The time to simulate (business hours)")


class SimulatedEvent(BaseModel):
    kind: str  # input | trigger | send | attribute | delay | handoff | paused | error | call
    data: dict[str, Any]


class SimulateOut(BaseModel):
    events: list[SimulatedEvent]
    state: SimulatedState
    contact: SimulatedContact
