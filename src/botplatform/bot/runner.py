"""The bot on the channel path: inbound messages in, replies queued through the policy gate
(`message.service.queue_outbound`), state kept in the conversation's `BotSession` row.

Handoff: a handoff node or an agent's reply pauses the bot for the conversation; resolving
it, or the idle timer (no agent message for N minutes), gives it back."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.analytics import cycles
from botplatform.bot import cache as bot_cache
from botplatform.bot import calls, repository
from botplatform.bot.dispatch import dispatch
from botplatform.bot.engine import Contact as ContactView
from botplatform.bot.engine import Engine, Inbound, Outcome, State
from botplatform.bot.flow import Flow
from botplatform.bot.triggers import Candidate, IntentLike
from botplatform.channel import cache as channel_cache
from botplatform.channels import actions
from botplatform.channels.base import ChannelInfo
from botplatform.channels.policy import PolicyRefused
from botplatform.conversation.consent import consent_keyword
from botplatform.events import payloads
from botplatform.events.service import emit
from botplatform.kit.clock import utcnow
from botplatform.kit.logging import get_logger
from botplatform.message.schemas import MessageBody
from botplatform.message.service import add_note, queue_outbound
from botplatform.models import Bot, BotSession, Contact, Conversation, Message
from botplatform.worker.jobs import enqueue

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

log = get_logger("botplatform.bot")
RESUME_JOB = "bot_resume"
EXTERNAL_JOB = "bot_external"


def to_state(row: BotSession) -> State:
    return State(
        status=row.status,
        bot_id=str(row.bot_id) if row.bot_id else None,
        version_id=str(row.version_id) if row.version_id else None,
        node_id=row.node_id,
        waiting=row.waiting,
        variables=dict(row.variables or {}),
        attempts=row.attempts,
        step=row.step,
        resume_at=row.resume_at,
        last_input=row.last_input,
        last_error=row.last_error,
    )


def store_state(row: BotSession, state: State) -> None:
    """The run's state on its session row, attribute by attribute, only where it differs:
    each attribute set is a change the ORM records and the batch's write then examines
    (`batch._turn_writes`), and a turn changes two or three of the eleven."""
    values: dict[str, Any] = {
        "status": state.status,
        "node_id": state.node_id,
        "waiting": state.waiting,
        "bot_id": uuid.UUID(state.bot_id) if state.bot_id else None,
        "version_id": uuid.UUID(state.version_id) if state.version_id else None,
        "variables": state.variables,
        "attempts": state.attempts,
        "step": state.step,
        "resume_at": state.resume_at,
        "last_input": state.last_input[:4096] if state.last_input else None,
        "last_error": state.last_error[:2000] if state.last_error else None,
    }
    for name, value in values.items():
        if getattr(row, name) != value:
            # `variables` as a new object: the JSON column sees the change.
            setattr(row, name, dict(value) if name == "variables" else value)


def inbound_of(message: Message, new_conversation: bool) -> Inbound:
    reply = message.content.get("reply") if isinstance(message.content, dict) else None
    if isinstance(reply, dict) and reply.get("id"):
        return Inbound(
            text=message.text,
            payload=str(reply["id"]),
            title=str(reply.get("title") or ""),
            new_conversation=new_conversation,
        )
    return Inbound(text=message.text, new_conversation=new_conversation)


class ChannelEffects:
    """The engine's hands on the channel path."""

    defer_external = True

    def __init__(
        self,
        runtime: Runtime,
        db: AsyncSession,
        channel: ChannelInfo,
        conversation: Conversation,
        contact: Contact,
        session: BotSession,
        state: State,
        key: str,
    ) -> None:
        self.runtime, self.db, self.channel = runtime, db, channel
        self.conversation, self.contact, self.session = conversation, contact, session
        self.state = state  # the run as the engine moves it (the session row is written after)
        self.key, self.sent = key, 0

    async def send(self, body: MessageBody) -> None:
        self.sent += 1
        try:
            await queue_outbound(
                self.db,
                channel=self.channel,
                contact=self.contact,
                conversation=self.conversation,
                body=body,
                idempotency_key=f"{self.key}:{self.sent}"[:200],
                sender_user_id=None,
                # Which bot answered, written with the row (the run's, not the session row's
                # yet: a run that starts now is written to it after the engine's turn).
                also={"bot": {"bot_id": self.state.bot_id}},
            )
        except PolicyRefused as exc:  # opted out, window closed: the bot does not insist
            self.error(exc.code, exc.message)

    async def set_attribute(self, name: str, value: Any) -> None:
        if name == "name":
            self.contact.name = str(value)[:200]
        else:
            self.contact.attributes = {**(self.contact.attributes or {}), name: value}

    async def handoff(self, node: dict[str, Any]) -> None:
        self.conversation.status = "open"
        self.session.handoff_at, self.session.human_at = utcnow(), None
        if node.get("note"):
            await add_note(self.db, self.conversation, str(node["note"]), None)
        await _emit_handoff(self.db, self.conversation, self.session.bot_id, "handoff_node")

    async def wait(self, state: State, kind: str, seconds: int = 0) -> None:
        job = RESUME_JOB if kind == "delay" else EXTERNAL_JOB
        ws, row = str(self.channel.workspace_id), str(self.session.id)
        enqueue(self.db, job, ws, row, str(state.step), delay_ms=seconds * 1000 or None)

    async def call(self, node: dict[str, Any], scope: dict[str, Any]) -> Outcome:
        return await make_call(self.runtime, self.channel.workspace_id, node, scope)

    def error(self, code: str, message: str) -> None:
        log.warning("bot_error", code=code, error=message, session_id=str(self.session.id))


async def make_call(
    runtime: Runtime, workspace_id: uuid.UUID, node: dict[str, Any], scope: dict[str, Any]
) -> Outcome:
    """An outside call, outside any caller's transaction (the AI domain meters usage in its
    own short one)."""
    if node["type"] == "http_request":
        return await calls.http_request(runtime, node, scope)
    from botplatform.kit.scoping import enter_workspace

    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, workspace_id)
        return await calls.ai_answer(runtime, db, workspace_id, node, scope)


def _engine(flow: Flow, contact: Contact, effects: ChannelEffects) -> Engine:
    view = ContactView(contact.name, dict(contact.attributes or {}))
    return Engine(flow, view, effects, utcnow)


async def _pinned(db: AsyncSession, workspace_id: uuid.UUID, version_id: str | None) -> Flow | None:
    if version_id is None:
        return None
    version = await repository.find_version(db, workspace_id, uuid.UUID(version_id))
    return Flow.load(version.flow) if version is not None else None


def idle_minutes(runtime: Runtime, bot: Bot | None) -> int:
    if bot is not None and bot.handoff_idle_minutes is not None:
        return bot.handoff_idle_minutes
    return runtime.settings.bot_handoff_idle_minutes


async def idle_expired(runtime: Runtime, db: AsyncSession, session: BotSession) -> bool:
    bot = await db.get(Bot, session.bot_id) if session.bot_id else None
    minutes = idle_minutes(runtime, bot)
    since = session.human_at or session.handoff_at
    return minutes > 0 and since is not None and utcnow() - since >= timedelta(minutes=minutes)


def give_back(session: BotSession, conversation: Conversation) -> None:
    """The bot has the conversation again; the next message is matched against triggers."""
    session.status, session.waiting, session.node_id = "idle", None, None
    session.step += 1  # any job still pending for the old run does nothing
    if conversation.status in ("open", "pending"):
        conversation.status = "bot"


async def _session(db: AsyncSession, conversation: Conversation) -> BotSession:
    return await repository.session_made(db, conversation.workspace_id, conversation.id)


def _wants_new_conversation(candidates: list[Candidate]) -> bool:
    return any(
        trigger.get("type") == "new_conversation"
        for candidate in candidates
        for trigger in candidate.flow.triggers
    )


async def handle_inbound(
    runtime: Runtime,
    db: AsyncSession,
    channel: ChannelInfo,
    message: Message,
    sender_id: str | None = None,
    *,
    opens_conversation: bool | None = None,
) -> bool:
    """Gives an inbound message to the conversation's bot. True when a bot has the
    conversation (it answered, or it is paused for a human): no plain auto-reply then.
    `sender_id` (the customer's id on the channel): they see the bot typing meanwhile,
    where the channel shows it. `opens_conversation`: whether the message is the
    conversation's first from the customer, when the caller knows (a channel batch stores
    several before their turns); else counted, if a live flow starts on new conversations."""
    ws = channel.workspace_id
    if message.type == "reaction" or consent_keyword(message.text):
        return False  # a thumbs-up is not something to answer; STOP/START are handled apart
    # No bot on this channel: the plain auto-reply, as before bots, whatever the session
    # says. Asked of the process's cache first, so such a message takes no lock and no query.
    live = await bot_cache.live_for_channel(db, ws, channel.id)
    if not live:
        return False
    conversation = await repository.lock_conversation(db, ws, message.conversation_id)
    contact = await db.get(Contact, conversation.contact_id) if conversation else None
    if conversation is None or contact is None or contact.opted_out:
        return False
    session = await _session(db, conversation)
    if session.status == "handoff":
        if not await idle_expired(runtime, db, session):
            return True
        give_back(session, conversation)
    if sender_id is not None:  # the bot is about to answer
        actions.show_typing_soon(runtime, channel, sender_id, conversation.thread_key or None)
    state = to_state(session)
    effects = ChannelEffects(
        runtime, db, channel, conversation, contact, session, state, f"bot:{message.id}"
    )
    candidates = [
        Candidate(str(bot.bot_id), str(bot.version_id), bot.flow, index)
        for index, bot in enumerate(live)
    ]
    # Asked only when a live flow starts on a new conversation (one query per message).
    new = _wants_new_conversation(candidates) and (
        opens_conversation
        if opens_conversation is not None
        else await repository.inbound_count(db, ws, conversation.id) == 1
    )
    live_flows = {candidate.version_id: candidate.flow for candidate in candidates}

    async def intents(text: str) -> IntentLike | None:
        return await calls.detect_intent(runtime, db, ws, text)

    async def pinned(version_id: str | None) -> Flow | None:
        # A run on the live version (the usual case) needs no query for its flow.
        if version_id is not None and version_id in live_flows:
            return live_flows[version_id]
        return await _pinned(db, ws, version_id)

    handled = await dispatch(
        state,
        inbound_of(message, new),
        candidates,
        intents,
        pinned,
        lambda flow: _engine(flow, contact, effects),
    )
    store_state(session, state)
    await cycles.note_bot(db, session)
    if handled and state.status in ("running", "finished") and conversation.status != "bot":
        conversation.status = "bot"
    return handled


async def continue_run(
    runtime: Runtime,
    db: AsyncSession,
    workspace_id: uuid.UUID,
    session_id: uuid.UUID,
    step: int | None,
    waiting: str,
    outcome: Outcome | None,
) -> bool:
    """Goes on with a run after its delay or outside call, if it still waits for exactly
    that (a newer message, a handoff or a resolve may have moved it on)."""
    session = await repository.get_session(db, workspace_id, session_id)
    if session is None:
        return False
    conversation = await repository.lock_conversation(db, workspace_id, session.conversation_id)
    await db.refresh(session)
    if conversation is None or session.status != "running" or session.waiting != waiting:
        return False
    if step is not None and session.step != step:
        return False
    channel = await channel_cache.get(db, workspace_id, conversation.channel_id)
    contact = await db.get(Contact, conversation.contact_id)
    flow = await _pinned(db, workspace_id, str(session.version_id) if session.version_id else None)
    if channel is None or contact is None or flow is None:
        return False
    state = to_state(session)
    key = f"bot:{session.id}:{state.step}"
    effects = ChannelEffects(runtime, db, channel, conversation, contact, session, state, key)
    await _engine(flow, contact, effects).resume(state, outcome)
    store_state(session, state)
    await cycles.note_bot(db, session)
    return True


async def pause_for_human(db: AsyncSession, conversation: Conversation) -> None:
    """An agent wrote in the conversation: the bot stays quiet until it is resolved or the
    agents go idle."""
    session = await _session(db, conversation)
    now = utcnow()
    if session.status != "handoff":
        session.handoff_at = now
        if session.bot_id is not None and session.status != "finished":  # a bot was talking
            await _emit_handoff(db, conversation, session.bot_id, "agent_reply")
            await cycles.note_handoff(db, session)
    session.status, session.waiting, session.node_id, session.human_at = "handoff", None, None, now
    session.step += 1


async def _emit_handoff(
    db: AsyncSession, conversation: Conversation, bot_id: uuid.UUID | None, reason: str
) -> None:
    await db.flush()  # the event carries the conversation as stored
    data = payloads.bot_handoff(conversation, bot_id, reason)
    await emit(db, conversation.workspace_id, "bot.handoff", data)


async def release(db: AsyncSession, conversation: Conversation) -> None:
    """The conversation was resolved: the bot answers its next message from the start."""
    session = await repository.session_for(db, conversation.workspace_id, conversation.id)
    if session is not None and session.status in ("handoff", "running"):
        session.status, session.waiting, session.node_id = "idle", None, None
        session.step += 1
