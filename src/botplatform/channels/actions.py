"""What the product does on a channel besides sending messages, where the channel's adapter
can (`Capability.TYPING`, `Capability.EDITS`): a typing indicator while a bot prepares its
answer or an agent writes, and the new text of a message already sent. No provider is named
here: each adapter turns `sender_action` and `edit_of` into its own call, or lacks the
capability and is never asked."""

from __future__ import annotations

import asyncio
import uuid

from botplatform.channel import cache as channel_cache
from botplatform.channels.base import UNCHANGED, ChannelInfo, ProviderSendError
from botplatform.channels.messages import Capability, Content, MessageType, OutboundMessage
from botplatform.channels.registry import adapter_for, capabilities_of
from botplatform.conversation.repository import recipient_of
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Conversation, Message
from botplatform.runtime import Runtime
from botplatform.worker.jobs import JobContext, job

TYPING_JOB = "show_typing"
EDIT_JOB = "edit_message"

log = get_logger("botplatform.channels")

#: Typing indicators on their way, held so the event loop does not drop them unfinished.
_PENDING: set[asyncio.Task[None]] = set()


def can(provider: str, capability: Capability) -> bool:
    return capability in capabilities_of(provider)


async def show_typing_now(
    runtime: Runtime, channel: ChannelInfo, recipient_id: str, thread: str | None
) -> None:
    """The indicator, once (it ends by itself, or when our message arrives). A failure is
    only logged: nothing waits on it."""
    adapter = adapter_for(channel, runtime.settings, runtime.http)
    indicator = OutboundMessage(
        recipient_id=recipient_id,
        content=Content(type=MessageType.TEXT),
        idempotency_key=f"typing:{uuid.uuid4()}",
        sender_action="typing_on",
        reply_to=thread,
    )
    try:
        await adapter.send(indicator)
    except ProviderSendError as exc:
        log.info("typing_not_shown", channel_id=str(channel.id), code=exc.code)


def show_typing_soon(
    runtime: Runtime, channel: ChannelInfo, recipient_id: str, thread: str | None = None
) -> None:
    """A bot is about to answer: the indicator leaves at once, without waiting, while the
    bot decides. Its answer is sent only after the caller's transaction commits, so the
    indicator comes first (a job for it would race the answer's own send job)."""
    if not can(channel.provider, Capability.TYPING):
        return
    task = asyncio.get_running_loop().create_task(
        show_typing_now(runtime, channel, recipient_id, thread)
    )
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


@job(TYPING_JOB, max_retries=0)
async def show_typing(ctx: JobContext, workspace_id: str, conversation_id: str) -> None:
    """An agent is writing in the inbox (or an API client says it is). Never retried: a
    typing indicator shown late is worse than none."""
    ws = uuid.UUID(workspace_id)
    await enter_workspace(ctx.db, ws)
    conversation = await ctx.db.get(Conversation, uuid.UUID(conversation_id))
    if conversation is None or conversation.workspace_id != ws:
        return
    channel = await channel_cache.get(ctx.db, ws, conversation.channel_id)
    if channel is None or not can(channel.provider, Capability.TYPING):
        return
    recipient = await recipient_of(ctx.db, ws, conversation.contact_id, channel.provider)
    thread = conversation.thread_key or None
    await ctx.db.commit()  # nothing held open across the provider call
    await show_typing_now(ctx.runtime, channel, recipient, thread)


@job(EDIT_JOB, max_retries=5, min_backoff_ms=2_000)
async def edit_message(ctx: JobContext, workspace_id: str, message_id: str) -> None:
    """Gives the customer a message's new text (`message.service.edit_sent` changed the row
    first). Idempotent: it sends the row's text as it is now. Its outcome is kept on the
    row (`content.edit.status`: sent, or failed with the provider's reason)."""
    ws = uuid.UUID(workspace_id)
    await enter_workspace(ctx.db, ws)
    message = await ctx.db.get(Message, uuid.UUID(message_id))
    if message is None or message.workspace_id != ws or not message.provider_message_id:
        return
    conversation = await ctx.db.get(Conversation, message.conversation_id)
    channel = await channel_cache.get(ctx.db, ws, message.channel_id)
    if conversation is None or channel is None or not can(channel.provider, Capability.EDITS):
        return
    recipient = await recipient_of(ctx.db, ws, conversation.contact_id, channel.provider)
    row_id, text = message.id, message.text or ""
    edit = OutboundMessage(
        recipient_id=recipient,
        content=Content(type=MessageType.TEXT, text=text),
        idempotency_key=f"edit:{row_id}",
        edit_of=message.provider_message_id,
    )
    await ctx.db.commit()  # nothing held open across the provider call
    adapter = adapter_for(channel, ctx.runtime.settings, ctx.runtime.http)
    outcome: dict[str, str] = {"status": "sent"}
    try:
        await adapter.send(edit)
    except ProviderSendError as exc:
        if exc.retryable and not ctx.is_last_attempt:
            raise
        if exc.code != UNCHANGED:  # (unchanged: the customer already sees this text)
            outcome = {"status": "failed", "error_code": exc.code, "error_title": exc.title[:200]}
            log.info("edit_not_delivered", message_id=message_id, code=exc.code)
    await enter_workspace(ctx.db, ws)
    row = await ctx.db.get(Message, row_id, populate_existing=True)
    if row is not None and (row.text or "") == text:  # not edited again meanwhile
        row.content = {**(row.content or {}), "edit": outcome}
