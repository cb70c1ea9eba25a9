"""The bot tester: runs a bot on typed messages without a channel and says what it would
send and where the run ends up. Nothing is sent and nothing is stored; HTTP and AI nodes make
their calls for real (through the same SSRF-safe client), and a delay is reported, then
skipped. Hand the answered `state` back to continue the same conversation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.bot import calls, repository
from botplatform.bot.dispatch import dispatch
from botplatform.bot.engine import Contact, Engine, Inbound, Outcome, State
from botplatform.bot.flow import Flow
from botplatform.bot.nodes import NODE_TYPES
from botplatform.bot.schemas import (
    SimulatedContact,
    SimulatedEvent,
    SimulatedState,
    SimulateIn,
    SimulateOut,
)
from botplatform.bot.service import check_flow
from botplatform.bot.triggers import Candidate, IntentLike
from botplatform.channels.degrade import degrade
from botplatform.channels.messages import Capability
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Unprocessable
from botplatform.message.schemas import MessageBody
from botplatform.models import Bot

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

DRAFT = "draft"


class SimulatedEffects:
    defer_external = False  # the tester waits for HTTP and AI answers inline

    def __init__(
        self,
        runtime: Runtime,
        db: AsyncSession,
        workspace_id: uuid.UUID,
        capabilities: frozenset[Capability],
    ) -> None:
        self.runtime, self.db, self.workspace_id = runtime, db, workspace_id
        self.capabilities = capabilities
        self.events: list[SimulatedEvent] = []
        self.state: State | None = None

    def add(self, kind: str, **data: Any) -> None:
        self.events.append(SimulatedEvent(kind=kind, data=data))

    async def send(self, body: MessageBody) -> None:
        shown = degrade(body, self.capabilities)
        dump = shown.model_dump(mode="json", exclude_none=True)
        self.add("send", message={k: v for k, v in dump.items() if v not in ([], False)})

    async def set_attribute(self, name: str, value: Any) -> None:
        self.add("attribute", name=name, value=value)

    async def handoff(self, node: dict[str, Any]) -> None:
        self.add("handoff", node=node["id"], note=node.get("note"))

    async def wait(self, state: State, kind: str, seconds: int = 0) -> None:
        self.add("delay", node=state.node_id, seconds=seconds)
        self.state = state  # the walk goes on right after (see _run_delays)

    async def call(self, node: dict[str, Any], scope: dict[str, Any]) -> Outcome:
        if node["type"] == "http_request":
            outcome = await calls.http_request(self.runtime, node, scope)
        else:
            outcome = await calls.ai_answer(self.runtime, self.db, self.workspace_id, node, scope)
        self.add("call", node=node["id"], port=outcome.port, variables=outcome.variables)
        if outcome.error:
            self.add("error", code="call_failed", node=node["id"], message=outcome.error)
        return outcome

    def error(self, code: str, message: str) -> None:
        self.add("error", code=code, message=message)


async def _flow_of(db: AsyncSession, bot: Bot, version: str | int) -> tuple[str, Flow]:
    if version == DRAFT:
        check_flow(bot.flow)
        return DRAFT, Flow.load(bot.flow)
    if version == "published":
        if bot.published_version_id is None:
            raise Unprocessable("This bot has no published version yet.", code="not_published")
        found = await repository.find_version(db, bot.workspace_id, bot.published_version_id)
        if found is None:
            raise Unprocessable("This bot has no published version yet.", code="not_published")
        return str(found.id), Flow.load(found.flow)
    numbered = await repository.version_by_number(db, bot.workspace_id, bot.id, int(version))
    return str(numbered.id), Flow.load(numbered.flow)


def _consistent(given: SimulatedState, flow: Flow) -> bool:
    """A handed-back state must fit the flow: a running state stands on one of its nodes,
    waiting for what that node waits for."""
    if given.status != "running":
        return True
    node = flow.nodes.get(given.node_id or "")
    if node is None:
        return False
    kind = node["type"]
    expected = {"delay": "delay", "http_request": "external", "ai_answer": "external"}.get(
        kind, "input" if NODE_TYPES[kind].waits_for_input else None
    )
    return given.waiting == expected


def _state(given: SimulatedState | None, bot: Bot, flow: Flow, version_id: str) -> State:
    if given is None:
        return State(bot_id=str(bot.id))
    if given.status == "running" and given.version_id != version_id:
        raise Unprocessable(
            "The state belongs to another version of the bot; simulate that version.",
            code="state_invalid",
        )
    if not _consistent(given, flow):
        raise Unprocessable(
            "The state does not fit this flow (node or what it waits for).",
            code="state_invalid",
        )
    return State(
        status=given.status,
        bot_id=str(bot.id),
        version_id=given.version_id,
        node_id=given.node_id,
        waiting=given.waiting,
        variables=dict(given.variables),
        attempts=given.attempts,
        step=given.step,
        last_input=given.last_input,
    )


async def simulate(runtime: Runtime, db: AsyncSession, bot: Bot, body: SimulateIn) -> SimulateOut:
    version_id, flow = await _flow_of(db, bot, body.version)
    capabilities = (
        frozenset(body.capabilities) if body.capabilities is not None else frozenset(Capability)
    )
    effects = SimulatedEffects(runtime, db, bot.workspace_id, capabilities)
    contact = Contact(body.contact.name, dict(body.contact.attributes))
    moment: datetime = body.now or utcnow()
    engine = Engine(flow, contact, effects, lambda: moment)
    state = _state(body.state, bot, flow, version_id)
    if state.waiting in ("delay", "external"):  # a state from before: go on from there
        await engine.resume(state, None if state.waiting == "delay" else await engine.call(state))
    candidates = [Candidate(str(bot.id), version_id, flow, 0)]

    async def intents(text: str) -> IntentLike | None:
        found = await calls.detect_intent(runtime, db, bot.workspace_id, text)
        if found is not None:
            effects.add("intent", name=found.name, confidence=found.confidence)
        return found

    async def pinned(wanted: str | None) -> Flow | None:
        return flow if wanted == version_id else None

    for index, message in enumerate(body.messages):
        inbound = Inbound(
            text=message.text,
            payload=message.payload,
            new_conversation=body.new_conversation and index == 0 and body.state is None,
        )
        effects.add("input", text=message.text, payload=message.payload)
        if state.status == "handoff":
            effects.add("paused", reason="a human has this conversation")
            continue
        handled = await dispatch(state, inbound, candidates, intents, pinned, lambda _: engine)
        if not handled:
            effects.add("no_match", reason="no trigger matched; the bot stays silent")
        await _run_delays(engine, state)
    return SimulateOut(
        events=effects.events,
        state=SimulatedState(
            status=state.status,
            version_id=state.version_id,
            node_id=state.node_id,
            waiting=state.waiting,
            variables=state.variables,
            attempts=state.attempts,
            step=state.step,
            last_input=state.last_input,
        ),
        contact=SimulatedContact(name=contact.name, attributes=contact.attributes),
    )


async def _run_delays(engine: Engine, state: State) -> None:
    """A delay is reported (its `delay` event) and then skipped, as if its time had come."""
    for _ in range(50):
        if state.status != "running" or state.waiting != "delay":
            return
        await engine.resume(state, None)
