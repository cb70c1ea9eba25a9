"""Replies a widget visitor has not seen: a visitor who left an email (the pre-chat form)
and has not read an agent's or bot's reply within a few minutes (the widget marks replies
read as soon as they are shown, so an unread one means the visitor is away) gets it by
email, once. Every minute, from the scheduler."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import Select, select

from botplatform.email import templates
from botplatform.email.service import queue_email
from botplatform.kit.clock import utcnow
from botplatform.models import Channel, Contact, Conversation, Message, Workspace
from botplatform.worker.jobs import JobContext, job

OFFLINE_JOB = "webchat_email_unseen_replies"
#: A reply unread this long is emailed; older than the horizon, it is left alone.
UNSEEN_AFTER = timedelta(minutes=3)
HORIZON = timedelta(days=1)
BATCH = 500
#: How long "already emailed" is remembered (longer than the horizon).
EMAILED_SECONDS = 2 * 86400


def _unseen_replies() -> Select[Message, uuid.UUID, uuid.UUID]:
    now = utcnow()
    return (
        select(Message, Conversation.contact_id, Channel.workspace_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(Channel, Channel.id == Message.channel_id)
        .where(
            Channel.provider == "webchat",
            Message.direction == "outbound",
            Message.is_note.is_(False),
            Message.status.in_(("sent", "delivered")),
            Message.created_at <= now - UNSEEN_AFTER,
            Message.created_at >= now - HORIZON,
        )
        .order_by(Message.created_at)
        .limit(BATCH)
    )


@job(OFFLINE_JOB, max_retries=0, system=True)
async def email_unseen_replies(ctx: JobContext) -> None:
    rows = (await ctx.db.execute(_unseen_replies())).all()
    by_contact: dict[tuple[uuid.UUID, uuid.UUID], list[Message]] = defaultdict(list)
    for message, contact_id, workspace_id in rows:
        by_contact[(workspace_id, contact_id)].append(message)
    for (workspace_id, contact_id), messages in by_contact.items():
        contact = await ctx.db.get(Contact, contact_id)
        email = (contact.attributes or {}).get("email") if contact is not None else None
        if contact is None or not email or contact.opted_out or contact.email_opted_out:
            continue
        fresh = [
            m for m in messages
            if await ctx.runtime.kv.put_if_absent(f"webchat:emailed:{m.id}", "1", EMAILED_SECONDS)
        ]  # fmt: skip
        if not fresh:
            continue
        workspace = await ctx.db.get(Workspace, workspace_id)
        name = (workspace.brand_name or workspace.name) if workspace is not None else "Support"
        subject, text, html = templates.unseen_chat_replies(name, [m.text or "" for m in fresh])
        await queue_email(ctx.db, kind="webchat_reply", to=str(email), subject=subject,
                          text=text, html=html)  # fmt: skip
