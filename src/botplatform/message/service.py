"""Outbound messages: a row first (`queued`), then a send job that carries its id."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.automation import events as automation_events
from botplatform.channels import delivery, policy
from botplatform.channels.base import ChannelInfo
from botplatform.channels.degrade import degrade
from botplatform.channels.messages import (
    Button,
    Capability,
    Content,
    ListRow,
    ListSection,
    Media,
    MessageType,
    OutboundMessage,
    Reaction,
    Template,
)
from botplatform.channels.registry import capabilities_of
from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import AppError, Conflict, NotFound, Unprocessable
from botplatform.kit.scoping import scoped
from botplatform.message.schemas import MessageBody
from botplatform.models import Contact, Conversation, Message
from botplatform.template import service as templates
from botplatform.usage import service as usage
from botplatform.worker.jobs import enqueue

SEND_JOB = "send_message"
#: Declared in `channels.actions`.
EDIT_JOB = "edit_message"


def to_content(body: MessageBody) -> Content:
    kind = MessageType(body.type)
    media = None
    if body.media is not None:
        media = Media(
            provider_media_id=body.media.id,
            url=body.media.link,
            caption=body.media.caption,
            filename=body.media.filename,
        )
    reaction = Reaction(body.reaction_to, body.emoji or "") if body.reaction_to else None
    return Content(
        type=kind,
        text=body.text,
        media=media,
        location=body.location.model_dump(exclude_none=True) if body.location else None,
        contacts=body.contacts,
        reaction=reaction,
    )


def to_outbound(
    body: MessageBody,
    recipient: str,
    key: str,
    reply_to: str | None,
    callback_data: str | None = None,
) -> OutboundMessage:
    template = None
    if body.template is not None:
        template = Template(
            body.template.name, body.template.language, tuple(body.template.components)
        )
    return OutboundMessage(
        recipient_id=recipient,
        content=to_content(body),
        idempotency_key=key,
        reply_to=reply_to,
        preview_url=body.preview_url,
        buttons=tuple(Button(b.id, b.title) for b in body.buttons),
        list_button=body.list_button,
        sections=tuple(
            ListSection(s.title, tuple(ListRow(r.id, r.title, r.description) for r in s.rows))
            for s in body.sections
        ),
        header=body.header,
        footer=body.footer,
        template=template,
        callback_data=callback_data,
        tag=body.tag,
    )


async def _reply_target(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    message_id: uuid.UUID | None,
    conversation: Conversation,
) -> str | None:
    if message_id is None:
        return None
    target = (
        await db.execute(
            scoped(Message, workspace_id).where(
                Message.id == message_id, Message.conversation_id == conversation.id
            )
        )
    ).scalar_one_or_none()
    if target is None or not target.provider_message_id:
        raise NotFound(
            "The message to reply to is not in this conversation.", code="reply_target_not_found"
        )
    return target.provider_message_id


async def existing(db: AsyncSession, workspace_id: uuid.UUID, key: str) -> Message | None:
    statement = scoped(Message, workspace_id).where(Message.idempotency_key == key)
    return (await db.execute(statement)).scalar_one_or_none()


IDEMPOTENCY_KEY = ["workspace_id", "idempotency_key"]


async def queue_outbound(
    db: AsyncSession,
    *,
    channel: ChannelInfo,
    contact: Contact,
    conversation: Conversation,
    body: MessageBody,
    idempotency_key: str,
    sender_user_id: uuid.UUID | None,
    check_quota: bool = False,
    human: bool = False,
    also: dict[str, Any] | None = None,
) -> Message:
    """Accepts a send: checks the policy now (a clear 422 instead of a failed message later),
    stores the row and queues its job. The same idempotency key returns the first message:
    the key's unique constraint decides (nothing is read first), so a repeat, concurrent ones
    included, stores and sends nothing. `check_quota` (the API): a spent message quota
    answers 402 and stores nothing; sends from workers skip it, and their send job fails the
    row with `quota_exceeded` instead. `also`: more of the row's content (who decided the
    send), stored with it."""
    try:
        body, reply_to = await _accepted(
            db, channel, contact, conversation, body, check_quota=check_quota, human=human
        )
    except AppError:
        # Refused now, but perhaps accepted before: a repeat gets its first message back.
        found = await existing(db, channel.workspace_id, idempotency_key)
        if found is None:
            raise
        return found
    # Only the message itself: the send job rebuilds it from this (not channel, to, note).
    request: dict[str, Any] = body.model_dump(
        mode="json", exclude_none=True, include=set(MessageBody.model_fields)
    )
    now = utcnow()
    row: dict[str, Any] = {
        "workspace_id": channel.workspace_id,
        "conversation_id": conversation.id,
        "channel_id": channel.id,
        "direction": "outbound",
        "type": body.type,
        "text": body.text or (body.media.caption if body.media else None),
        "content": {"request": request, **(also or {})},
        "is_note": False,
        "status": "queued",
        "idempotency_key": idempotency_key,
        "reply_to_provider_id": reply_to,
        "sender_user_id": sender_user_id,
        "attempts": 0,
        "edited": False,
        "deleted": False,
        "created_at": now,
        "updated_at": now,
    }
    # Decided by a worker inside an inbound batch for the customer who just wrote: leased to
    # that batch, which sends it after its commit (channels/delivery.py); else a send job.
    leases = None if human or check_quota else delivery.leases_of(db)
    recipient = leases.recipient_for(conversation.id) if leases is not None else None
    if leases is not None and recipient is not None:
        row.update(leases.leased(now))
    row["content"] = automation_events.with_chain(db, row["content"])
    if leases is not None and recipient is not None and leases.deferred is not None:
        # Inserted with the batch's last writes (`Leases.defer_inserts`): the row as an
        # object of no session, which nothing in the batch changes or reads from the table.
        row = core.complete_row(Message, row)
        leases.deferred[row["id"]] = row
        message = core.instance(Message, row)
    else:
        inserted = await core.insert_loaded(db, Message, row, conflict=IDEMPOTENCY_KEY)
        if inserted is None:  # the key is taken: by an earlier send, or a concurrent one
            return await _keyed(db, channel.workspace_id, idempotency_key)
        message = inserted
    if leases is not None and recipient is not None:
        leases.take(delivery.LeasedReply(message, channel, contact.id, recipient))
    conversation.last_message_at = now  # flushed with the transaction's other changes
    if recipient is None:
        enqueue(db, SEND_JOB, str(channel.workspace_id), str(message.id))
    return message


async def _accepted(
    db: AsyncSession,
    channel: ChannelInfo,
    contact: Contact,
    conversation: Conversation,
    body: MessageBody,
    *,
    check_quota: bool,
    human: bool,
) -> tuple[MessageBody, str | None]:
    """The send as it leaves (degraded for the channel, tagged where it must be) and the
    provider id it answers; raises the app's error (quota, policy, template, reply target)
    for a send refused."""
    if check_quota:
        await usage.ensure_can_send(db, channel.workspace_id)
    body = degrade(body, capabilities_of(channel.provider))  # e.g. buttons → numbered text
    # A person's late reply on Messenger/Instagram goes out with HUMAN_AGENT (never a bot's,
    # an automation's or an API key's: Meta allows the tag for people only).
    if body.tag is None and human and policy.needs_agent_tag(channel, conversation):
        body = body.model_copy(update={"tag": policy.HUMAN_AGENT})
    policy.check(channel, contact, conversation, body.type, body.tag)
    if body.template is not None:  # a template known here: its variables must fit it
        template = body.template
        await templates.check_send(
            db, channel, template.name, template.language, template.components
        )
    reply_to = await _reply_target(db, channel.workspace_id, body.reply_to, conversation)
    # A conversation that is a thread (Slack) is answered in that thread: its root is the
    # message replied to (Slack threads hang from their root only). Empty elsewhere.
    return body, conversation.thread_key or reply_to


async def _keyed(db: AsyncSession, workspace_id: uuid.UUID, key: str) -> Message:
    """The message that holds `key`, which an insert just met. Read committed: a concurrent
    insert of the key was waited for, so its row is visible now."""
    found = await existing(db, workspace_id, key)
    if found is None:  # pragma: no cover - the constraint said it exists
        raise Conflict(
            "A send with this idempotency key is in progress.", code="idempotency_conflict"
        )
    return found


async def resend(
    db: AsyncSession,
    failed: Message,
    *,
    channel: ChannelInfo,
    contact: Contact,
    conversation: Conversation,
    sender_user_id: uuid.UUID | None,
) -> Message:
    """Sends a failed message's content again, only because a person asked: a new row (the
    failed one stays as the record of what happened, and a late status still moves it on),
    through the policy gate and the quota like any send. Keyed `resend:<failed id>`, so a
    repeated click queues one resend."""
    if failed.direction != "outbound" or failed.is_note or failed.status != "failed":
        raise Conflict(
            "Only a failed outbound message can be resent.",
            code="message_not_failed",
            details={"status": failed.status},
        )
    try:
        body = MessageBody.model_validate((failed.content or {}).get("request"))
    except ValidationError as exc:
        raise Conflict(
            "This message's content can no longer be sent as it was.",
            code="message_not_resendable",
        ) from exc
    return await queue_outbound(
        db,
        channel=channel,
        contact=contact,
        conversation=conversation,
        body=body,
        idempotency_key=f"resend:{failed.id}",
        sender_user_id=sender_user_id,
        check_quota=True,
    )


async def add_note(
    db: AsyncSession, conversation: Conversation, text: str, sender_user_id: uuid.UUID | None
) -> Message:
    note = Message(
        workspace_id=conversation.workspace_id,
        conversation_id=conversation.id,
        channel_id=conversation.channel_id,
        direction="outbound",
        type="text",
        text=text,
        content={},
        is_note=True,
        status="note",
        sender_user_id=sender_user_id,
        attempts=0,
    )
    db.add(note)
    await db.flush()
    return note


async def edit_sent(db: AsyncSession, message: Message, provider: str, text: str) -> Message:
    """A text we sent, changed: the row first (its text, marked edited), then a job gives the
    customer the new text where the channel can edit (`Capability.EDITS`). 422
    `edit_not_available` elsewhere; 409 for what is not a sent text of ours."""
    if Capability.EDITS not in capabilities_of(provider):
        raise Unprocessable(
            "Editing a sent message is not available on this channel.",
            code="edit_not_available",
            details={"provider": provider},
        )
    if message.direction != "outbound" or message.is_note or message.type != "text":
        raise Conflict(
            "Only a text message sent to the customer can be edited.",
            code="message_not_editable",
        )
    if message.deleted or not message.provider_message_id:
        raise Conflict(
            "This message is not on the channel (not sent yet, or deleted): nothing to edit.",
            code="message_not_sent",
            details={"status": message.status},
        )
    content = dict(message.content or {})
    content["request"] = {**(content.get("request") or {}), "text": text}
    content["edit"] = {"status": "pending"}
    message.content, message.text, message.edited = content, text, True
    message.updated_at = utcnow()
    await db.flush()
    enqueue(db, EDIT_JOB, str(message.workspace_id), str(message.id))
    return message
