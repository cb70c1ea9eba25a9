from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Header, Query, status

from botplatform.audit.dependencies import Audit
from botplatform.authz.dependencies import (
    ContactsManage,
    ContactsRead,
    ConversationsManage,
    ConversationsRead,
    ConversationsReply,
    WorkspaceAccess,
)
from botplatform.bot import runner as bot_runner
from botplatform.channel import repository as channels
from botplatform.channels import actions
from botplatform.channels.messages import Capability
from botplatform.channels.policy import WHATSAPP_WINDOW
from botplatform.channels.tasks import MARK_READ_JOB
from botplatform.conversation import merge, repository, service
from botplatform.conversation.schemas import (
    ConsentOut,
    ContactOut,
    ConversationOut,
    ConversationStatus,
    ConversationUpdate,
    IdentityOut,
    MergeIn,
)
from botplatform.db import DbSession, reads_replica
from botplatform.events import payloads
from botplatform.events.service import emit
from botplatform.kit.clock import utcnow
from botplatform.kit.envelope import Envelope, ok
from botplatform.kit.errors import Unprocessable
from botplatform.kit.pagination import Page, PageQuery, paginate
from botplatform.kit.phone import PHONE_HINT
from botplatform.media.storage import SignedMediaUrls
from botplatform.member import repository as members
from botplatform.message import service as messages
from botplatform.message.schemas import (
    MessageBody,
    MessageEditIn,
    MessageOut,
    ReplyIn,
    SendMessageIn,
)
from botplatform.models import Channel, Contact, Conversation, Message
from botplatform.runtime import RuntimeDep
from botplatform.worker.jobs import enqueue

router = APIRouter(prefix="/workspaces/{ws}", tags=["conversations"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def message_out(message: Message, urls: SignedMediaUrls | None = None) -> MessageOut:
    out = MessageOut.model_validate(message, from_attributes=True)
    if urls is not None and message.media_key:
        out.media_url = urls.url_for(message.media_key)  # short-lived, for this reader
    return out


async def _conversation_out(
    db: DbSession, conversation: Conversation, handles: Mapping[uuid.UUID, str] | None = None
) -> ConversationOut:
    """`handles`: the contacts' numbers when the caller loaded them for a whole list."""
    contact = await db.get(Contact, conversation.contact_id)
    if handles is None:
        handles = await repository.handles(
            db, conversation.workspace_id, {contact.id} if contact else set()
        )
    last = conversation.last_inbound_at
    return ConversationOut(
        id=conversation.id,
        channel_id=conversation.channel_id,
        contact_id=conversation.contact_id,
        contact_name=contact.name if contact else "",
        contact_handle=handles.get(conversation.contact_id),
        status=conversation.status,
        assignee_id=conversation.assignee_id,
        unread_count=conversation.unread_count,
        last_inbound_at=last,
        last_message_at=conversation.last_message_at,
        window_open=last is not None and utcnow() - last <= WHATSAPP_WINDOW,
        created_at=conversation.created_at,
        team_id=conversation.team_id,
        labels=list(conversation.labels or []),
        thread=conversation.thread_key or None,
    )


@router.get("/conversations")
@reads_replica
async def list_conversations(
    access: ConversationsRead,
    db: DbSession,
    page: PageQuery,
    status_filter: Annotated[ConversationStatus | None, Query(alias="status")] = None,
    channel_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    label: Annotated[str | None, Query(max_length=64, description="an exact label")] = None,
) -> Envelope[Page[ConversationOut]]:
    statement = repository.conversations(
        access, status_filter, channel_id, assignee_id, label, dialect=db.get_bind().dialect.name
    )
    rows, cursor = await paginate(db, statement, Conversation.created_at, Conversation.id, page)
    known = await repository.handles(db, access.workspace_id, {r[0].contact_id for r in rows})
    items = [await _conversation_out(db, r[0], known) for r in rows]
    return ok(Page(items=items, next_cursor=cursor))


@router.get("/conversations/{conversation_id}")
async def get_conversation(
    access: ConversationsRead, conversation_id: uuid.UUID, db: DbSession
) -> Envelope[ConversationOut]:
    conversation = await repository.get_conversation(db, access, conversation_id)
    return ok(await _conversation_out(db, conversation))


@router.patch("/conversations/{conversation_id}")
async def update_conversation(
    access: ConversationsManage,
    conversation_id: uuid.UUID,
    body: ConversationUpdate,
    db: DbSession,
    audit: Audit,
) -> Envelope[ConversationOut]:
    """Changes status (bot → open → pending → resolved), assigns or unassigns, sets the
    labels, marks read."""
    conversation = await repository.get_conversation(db, access, conversation_id)
    before = {
        "status": conversation.status,
        "assignee_id": conversation.assignee_id,
        "labels": list(conversation.labels or []),
    }
    if body.assignee_id is not None:
        await members.get(db, access.workspace_id, body.assignee_id)  # 404 unless a member
        conversation.assignee_id = body.assignee_id
    if body.unassign:
        conversation.assignee_id = None
    if body.status is not None:
        await service.set_status(db, conversation, body.status)
        if body.status == "resolved":
            await bot_runner.release(db, conversation)  # the bot answers the next message
    if body.labels is not None:
        conversation.labels = list(dict.fromkeys(body.labels))
    if body.mark_read:
        conversation.unread_count = 0
        enqueue(db, MARK_READ_JOB, str(access.workspace_id), str(conversation.id))
    after = {
        "status": conversation.status,
        "assignee_id": conversation.assignee_id,
        "labels": list(conversation.labels or []),
    }
    await _emit_changes(db, conversation, before)
    await audit.log(
        "conversation.update",
        workspace_id=access.workspace_id,
        target_type="conversation",
        target_id=conversation.id,
        changes={
            k: {"before": str(before[k]), "after": str(after[k])}
            for k in before
            if before[k] != after[k]
        },
    )
    return ok(await _conversation_out(db, conversation), "Conversation updated")


async def _emit_changes(
    db: DbSession, conversation: Conversation, before: Mapping[str, object]
) -> None:
    ws = conversation.workspace_id
    if conversation.assignee_id != before["assignee_id"]:
        previous = before["assignee_id"]
        data = payloads.conversation_event(
            conversation, previous_assignee_id=str(previous) if previous else None
        )
        await emit(db, ws, "conversation.assigned", data)
    if conversation.status == "resolved" and before["status"] != "resolved":
        await emit(db, ws, "conversation.resolved", payloads.conversation_event(conversation))


@router.get("/conversations/{conversation_id}/messages")
@reads_replica
async def list_messages(
    access: ConversationsRead,
    conversation_id: uuid.UUID,
    db: DbSession,
    page: PageQuery,
    runtime: RuntimeDep,
) -> Envelope[Page[MessageOut]]:
    await repository.get_conversation(db, access, conversation_id)
    statement = repository.messages(access.workspace_id, conversation_id)
    rows, cursor = await paginate(db, statement, Message.created_at, Message.id, page)
    items = [message_out(r[0], runtime.media_urls) for r in rows]
    return ok(Page(items=items, next_cursor=cursor))


def _user_id(access: WorkspaceAccess) -> uuid.UUID | None:
    return access.principal.user.id if access.principal.user else access.membership.user_id


async def _queue(
    db: DbSession,
    audit: Audit,
    access: WorkspaceAccess,
    channel: Channel,
    contact: Contact,
    conversation: Conversation,
    body: MessageBody,
    idempotency_key: str | None,
) -> Envelope[MessageOut]:
    message = await messages.queue_outbound(
        db,
        channel=channel,
        contact=contact,
        conversation=conversation,
        body=body,
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        sender_user_id=_user_id(access),
        check_quota=True,
        human=access.principal.user is not None,
    )
    await audit.log(
        "message.send",
        workspace_id=access.workspace_id,
        target_type="message",
        target_id=message.id,
        changes={"type": message.type},
    )
    return ok(message_out(message), "Message queued")


@router.post("/conversations/{conversation_id}/messages", status_code=status.HTTP_201_CREATED)
async def reply(
    access: ConversationsReply,
    conversation_id: uuid.UUID,
    body: ReplyIn,
    db: DbSession,
    audit: Audit,
    idempotency_key: IdempotencyKey = None,
) -> Envelope[MessageOut]:
    """An agent's reply (queued, then sent through the policy gate) or, with `note`, an
    internal note that is never sent."""
    conversation = await repository.get_conversation(db, access, conversation_id)
    if body.note:
        note = await messages.add_note(db, conversation, body.text or "", _user_id(access))
        await audit.log(
            "conversation.note",
            workspace_id=access.workspace_id,
            target_type="message",
            target_id=note.id,
        )
        return ok(message_out(note), "Note added")
    channel = await channels.get(db, access.workspace_id, conversation.channel_id)
    contact = await repository.get_contact(db, access.workspace_id, conversation.contact_id)
    if conversation.status == "bot":
        conversation.status = "open"  # a human reply takes the conversation over
    await bot_runner.pause_for_human(db, conversation)
    return await _queue(db, audit, access, channel, contact, conversation, body, idempotency_key)


@router.post("/messages", status_code=status.HTTP_201_CREATED)
async def send_message(
    access: ConversationsReply,
    body: SendMessageIn,
    db: DbSession,
    audit: Audit,
    idempotency_key: IdempotencyKey = None,
) -> Envelope[MessageOut]:
    """Sends to a phone number (WhatsApp) or the contact's id on the channel (Messenger,
    Instagram: the PSID/IGSID; Telegram: the chat id) through a channel. Outside WhatsApp's
    24-hour window only a template is accepted (422 `window_closed`)."""
    channel = await channels.get_visible(db, access, body.channel_id)
    if channel.provider == "whatsapp" and not body.to.startswith("+"):
        raise Unprocessable(PHONE_HINT, code="invalid_recipient", details={"field": "body.to"})
    contact = await service.contact_for(db, channel, body.to.lstrip("+"), None)
    conversation = await service.conversation_for(db, channel, contact)
    return await _queue(db, audit, access, channel, contact, conversation, body, idempotency_key)


@router.post("/messages/{message_id}/resend", status_code=status.HTTP_201_CREATED)
async def resend_message(
    access: ConversationsReply, message_id: uuid.UUID, db: DbSession, audit: Audit
) -> Envelope[MessageOut]:
    """Sends a failed message's content again, as a new message (the failed one stays). Meant
    for `delivery_unknown`: a send interrupted after the request may have reached the
    provider, which is never repeated automatically; resend it if the customer did not get
    it. Calling it again returns the same resend. 409 `message_not_failed` for a message that
    is not failed."""
    failed = await repository.get_message(db, access, message_id)
    conversation = await repository.get_conversation(db, access, failed.conversation_id)
    channel = await channels.get(db, access.workspace_id, conversation.channel_id)
    contact = await repository.get_contact(db, access.workspace_id, conversation.contact_id)
    message = await messages.resend(
        db,
        failed,
        channel=channel,
        contact=contact,
        conversation=conversation,
        sender_user_id=_user_id(access),
    )
    await audit.log(
        "message.resend",
        workspace_id=access.workspace_id,
        target_type="message",
        target_id=message.id,
        changes={"resent_from": str(failed.id), "error_code": failed.error_code},
    )
    return ok(message_out(message), "Message queued again")


@router.patch("/messages/{message_id}")
async def edit_message(
    access: ConversationsReply,
    message_id: uuid.UUID,
    body: MessageEditIn,
    db: DbSession,
    audit: Audit,
) -> Envelope[MessageOut]:
    """Changes the text of a text message already sent, on channels that can edit one
    (Telegram, Slack): the row at once (`edited`: true), the customer's copy by a job, whose
    outcome is `content.edit.status` (pending, sent, failed). 422 `edit_not_available` on
    other channels; 409 `message_not_editable` for anything but an outbound text (notes,
    media, inbound), 409 `message_not_sent` before it reached the channel."""
    message = await repository.get_message(db, access, message_id)
    channel = await channels.get(db, access.workspace_id, message.channel_id)
    before = message.text
    message = await messages.edit_sent(db, message, channel.provider, body.text)
    await audit.log(
        "message.edit",
        workspace_id=access.workspace_id,
        target_type="message",
        target_id=message.id,
        changes={"text": {"from": before, "to": body.text}},
    )
    return ok(message_out(message), "Message edited")


@router.post("/conversations/{conversation_id}/typing", status_code=status.HTTP_202_ACCEPTED)
async def show_typing(
    access: ConversationsReply, conversation_id: uuid.UUID, db: DbSession
) -> Envelope[dict[str, bool]]:
    """Shows the customer a typing indicator (an agent is writing), on channels that show
    one (Telegram, Messenger, Instagram, the chat widget); `typing` false and nothing sent
    elsewhere. Meant to be called while writing, at most every few seconds."""
    conversation = await repository.get_conversation(db, access, conversation_id)
    channel = await channels.get(db, access.workspace_id, conversation.channel_id)
    shown = actions.can(channel.provider, Capability.TYPING)
    if shown:
        enqueue(db, actions.TYPING_JOB, str(access.workspace_id), str(conversation.id))
    return ok({"typing": shown})


@router.get("/contacts")
@reads_replica
async def list_contacts(
    access: ContactsRead,
    db: DbSession,
    page: PageQuery,
    search: Annotated[str | None, Query(max_length=100)] = None,
) -> Envelope[Page[ContactOut]]:
    statement = repository.contacts(access.workspace_id, search)
    rows, cursor = await paginate(db, statement, Contact.created_at, Contact.id, page)
    known = await repository.handles(db, access.workspace_id, {r[0].id for r in rows})
    items = [ContactOut.model_validate(r[0], from_attributes=True) for r in rows]
    for item in items:
        item.handle = known.get(item.id)
    return ok(Page(items=items, next_cursor=cursor))


@router.get("/contacts/{contact_id}")
async def get_contact(
    access: ContactsRead, contact_id: uuid.UUID, db: DbSession, runtime: RuntimeDep
) -> Envelope[ContactOut]:
    """The contact with its channel identities and its consent ledger."""
    contact = await repository.get_contact(db, access.workspace_id, contact_id)
    out = ContactOut.model_validate(contact, from_attributes=True)
    found = await repository.identities(db, access.workspace_id, contact.id)
    out.identities = [IdentityOut.of(i, runtime.media_urls) for i in found]
    first = min(found, key=lambda i: (i.created_at, i.id), default=None)
    out.handle = repository.handle(first.provider, first.external_id) if first else None
    out.consent = [
        ConsentOut.model_validate(c, from_attributes=True)
        for c in await repository.consent(db, access.workspace_id, contact.id)
    ]
    return ok(out)


@router.post("/contacts/{contact_id}/merge")
async def merge_contacts(
    access: ContactsManage,
    contact_id: uuid.UUID,
    body: MergeIn,
    db: DbSession,
    audit: Audit,
    runtime: RuntimeDep,
) -> Envelope[ContactOut]:
    """Merges another contact into this one (the same person on two channels): this contact
    takes its channel identities, conversations, consent ledger, tags and attributes, and the
    other is deleted. 409 `contacts_share_a_channel` when both talk on one channel."""
    keep = await repository.get_contact(db, access.workspace_id, contact_id)
    other = await repository.get_contact(db, access.workspace_id, body.contact_id)
    changes = await merge.merge(db, keep, other)
    await audit.log(
        "contact.merge",
        workspace_id=access.workspace_id,
        target_type="contact",
        target_id=keep.id,
        changes=changes,
    )
    out = ContactOut.model_validate(keep, from_attributes=True)
    found = await repository.identities(db, access.workspace_id, keep.id)
    out.identities = [IdentityOut.of(i, runtime.media_urls) for i in found]
    return ok(out, "Contacts merged")
