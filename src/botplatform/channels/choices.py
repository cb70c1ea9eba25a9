"""A pressed button shows on the message that offered it, where the channel can edit its own
messages (Slack: chat.update). The offer's buttons are replaced by the choice, so the
conversation reads as it happened and the same buttons cannot be pressed twice. A job, off the
inbound path; a channel without the adapter's `show_choice` is left as it is."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.channel import cache as channel_cache
from botplatform.channels.base import ChannelInfo, ProviderSendError
from botplatform.channels.registry import ADAPTERS, adapter_for
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace, scoped
from botplatform.models import Message
from botplatform.worker.jobs import JobContext, enqueue, job

SHOW_CHOICE_JOB = "show_choice"
log = get_logger("botplatform.channels")


def shows_choices(provider: str) -> bool:
    return hasattr(ADAPTERS.get(provider), "show_choice")


def queue(db: AsyncSession, channel: ChannelInfo, message: Message) -> None:
    """After the commit: `message`, a customer's button reply, shows on the offer."""
    if (
        message.type == "interactive"
        and message.reply_to_provider_id
        and shows_choices(channel.provider)
    ):
        enqueue(db, SHOW_CHOICE_JOB, str(channel.workspace_id), str(message.id))


@job(SHOW_CHOICE_JOB, max_retries=3, min_backoff_ms=2_000)
async def show_choice(ctx: JobContext, workspace_id: str, message_id: str) -> None:
    ws = uuid.UUID(workspace_id)
    await enter_workspace(ctx.db, ws)
    reply = await ctx.db.get(Message, uuid.UUID(message_id))
    if reply is None or not reply.reply_to_provider_id:
        return
    offer = (
        await ctx.db.execute(
            scoped(Message, ws).where(
                Message.channel_id == reply.channel_id,
                Message.provider_message_id == reply.reply_to_provider_id,
                Message.direction == "outbound",
            )
        )
    ).scalar_one_or_none()
    channel = await channel_cache.get(ctx.db, ws, reply.channel_id)
    if offer is None or channel is None:
        return  # an offer sent from outside the platform: nothing of ours to edit
    await ctx.db.commit()  # nothing held open across the provider call
    adapter = adapter_for(channel, ctx.runtime.settings, ctx.runtime.http)
    try:
        await adapter.show_choice(  # type: ignore[attr-defined]
            reply.reply_to_provider_id, offer.text or "", reply.text or ""
        )
    except ProviderSendError as exc:
        if exc.retryable and not ctx.is_last_attempt:
            raise
        log.info("show_choice_failed", code=exc.code)
