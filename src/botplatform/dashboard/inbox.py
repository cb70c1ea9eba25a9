"""The inbox: conversations with filters, one conversation's thread, replies, notes,
assignment and status. Live updates: the list and the thread are fragments that answer 204
when nothing changed; `static/app.js` keeps the workspace's event socket open
(`/api/v1/workspaces/{ws}/events/ws`, authenticated by the session cookie from this origin)
and fires `bp:changed` on `<body>` for each event, which makes htmx fetch them
(`LIVE_TRIGGER`). While the socket is down it reconnects with backoff and fires the same
event every `FALLBACK_POLL_SECONDS` instead."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission
from botplatform.channel import repository as channel_repository
from botplatform.channels import actions
from botplatform.channels.messages import Capability
from botplatform.conversation import endpoints as conversation_api
from botplatform.conversation import repository as conversation_repository
from botplatform.conversation.schemas import ConversationOut, ConversationUpdate
from botplatform.dashboard.threads import bubbles, list_version, thread_version
from botplatform.dashboard.web import Page, PageRoute, is_htmx, parse_form, ws_page
from botplatform.kit.errors import NotFound, Unprocessable
from botplatform.kit.scoping import scoped
from botplatform.media.storage import SignedMediaUrls
from botplatform.member import repository as member_repository
from botplatform.message.schemas import ReplyIn
from botplatform.models import Channel, Contact, Conversation, Message

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)

ReadPage = Annotated[Page, ws_page(Permission.CONVERSATIONS_READ)]
ReplyPage = Annotated[Page, ws_page(Permission.CONVERSATIONS_REPLY)]
ManagePage = Annotated[Page, ws_page(Permission.CONVERSATIONS_MANAGE)]
Text = Annotated[str, Query(max_length=100)]

LIVE_TRIGGER = "bp:changed from:body"
FALLBACK_POLL_SECONDS = 15
LIST_LIMIT = 100
THREAD_LIMIT = 200
STATUSES = ("open", "pending", "bot", "resolved")


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _filters_context(page: Page) -> dict[str, Any]:
    channels = list(
        (await page.db.execute(channel_repository.list_statement(page.granted))).scalars()
    )
    members = list((await page.db.execute(member_repository.members_with_users(page.ws))).all())
    return {
        "channels": channels,
        "channel_names": {c.id: c.name for c in channels},
        "members": [(user.id, user.name or user.email) for _, user in members],
        "member_names": {user.id: user.name or user.email for _, user in members},
        "statuses": STATUSES,
    }


async def _conversations(
    page: Page, status: str, assignee: str, channel: str, label: str = ""
) -> list[ConversationOut]:
    statement = conversation_repository.conversations(
        page.granted,
        status if status in STATUSES else None,
        _uuid(channel),
        None,
        label.strip() or None,
        dialect=page.db.get_bind().dialect.name,
    )
    if assignee == "me":
        statement = statement.where(Conversation.assignee_id == page.user.id)
    elif assignee == "none":
        statement = statement.where(Conversation.assignee_id.is_(None))
    elif _uuid(assignee):
        statement = statement.where(Conversation.assignee_id == _uuid(assignee))
    statement = statement.order_by(
        Conversation.last_message_at.desc().nulls_last(), Conversation.id
    ).limit(LIST_LIMIT)
    rows = list((await page.db.execute(statement)).scalars())
    # One query loads their contacts into the session, so the API's own view of each
    # conversation (contact name, 24-hour window) below finds them without another.
    contact_ids = {row.contact_id for row in rows}
    if contact_ids:
        await page.db.execute(scoped(Contact, page.ws).where(Contact.id.in_(contact_ids)))
    known = await conversation_repository.handles(page.db, page.ws, contact_ids)
    return [await conversation_api._conversation_out(page.db, row, known) for row in rows]


def _query(status: str, assignee: str, channel: str, label: str = "") -> str:
    pairs = (("status", status), ("assignee", assignee), ("channel", channel), ("label", label))
    return urlencode({key: value for key, value in pairs if value})


async def _list_context(
    page: Page,
    status: str,
    assignee: str,
    channel: str,
    selected: uuid.UUID | None = None,
    label: str = "",
) -> dict[str, Any]:
    conversations = await _conversations(page, status, assignee, channel, label)
    return {
        "conversations": conversations,
        "list_version": list_version(conversations),
        "filters": {"status": status, "assignee": assignee, "channel": channel, "label": label},
        "filter_query": _query(status, assignee, channel, label),
        # Suggestions for the label filter: the labels on the conversations listed.
        "known_labels": sorted({item for c in conversations for item in c.labels}),
        "selected": selected,
        "live_trigger": LIVE_TRIGGER,
        "live_socket": f"/api/v1/workspaces/{page.ws}/events/ws",
        "fallback_poll_ms": FALLBACK_POLL_SECONDS * 1000,
        **await _filters_context(page),
    }


@router.get("")
async def workspace_home(page: Annotated[Page, ws_page(Permission.WORKSPACE_READ)]) -> Response:
    nav = page.nav()
    return page.redirect(nav[0][1] if nav else page.url("settings"))


@router.get("/inbox")
async def inbox(
    page: ReadPage, status: Text = "", assignee: Text = "", channel: Text = "", label: Text = ""
) -> Response:
    context = await _list_context(page, status, assignee, channel, label=label)
    return page.render("app/inbox.html", **context)


@router.get("/inbox/list")
async def inbox_list(
    page: ReadPage,
    status: Text = "",
    assignee: Text = "",
    channel: Text = "",
    selected: Text = "",
    v: Text = "",
    label: Text = "",
) -> Response:
    """The conversation list fragment; 204 when it is what the browser already shows."""
    context = await _list_context(page, status, assignee, channel, _uuid(selected), label)
    if v and v == context["list_version"]:
        return Response(status_code=204)
    return page.render("fragments/conversation_list.html", **context)


def _media_links(page: Page) -> SignedMediaUrls:
    # Path-only links (same signer as the API's): the browser fetches them from the origin it
    # is on, which the CSP allows, whatever APP_URL says.
    return SignedMediaUrls(page.runtime.settings.signing_key, "")


async def _thread_context(page: Page, conversation_id: uuid.UUID) -> dict[str, Any]:
    conversation = await conversation_repository.get_conversation(
        page.db, page.granted, conversation_id
    )
    summary = await conversation_api._conversation_out(page.db, conversation)
    statement = (
        conversation_repository.messages(page.ws, conversation_id)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(THREAD_LIMIT)
    )
    messages = list(reversed((await page.db.execute(statement)).scalars().all()))
    channel = await page.db.get(Channel, conversation.channel_id)
    return {
        "conversation": summary,
        "channel": channel,
        "shows_typing": channel is not None and actions.can(channel.provider, Capability.TYPING),
        "bubbles": bubbles(messages, _media_links(page)),
        "thread_version": thread_version(conversation, messages),
        "live_trigger": LIVE_TRIGGER,
        "reply_key": str(uuid.uuid4()),
    }


@router.get("/inbox/{conversation_id}")
async def conversation(
    page: ReadPage,
    conversation_id: uuid.UUID,
    status: Text = "",
    assignee: Text = "",
    channel: Text = "",
    label: Text = "",
) -> Response:
    context = await _list_context(page, status, assignee, channel, conversation_id, label)
    context.update(await _thread_context(page, conversation_id))
    return page.render("app/inbox.html", **context)


@router.get("/inbox/{conversation_id}/thread")
async def thread(page: ReadPage, conversation_id: uuid.UUID, v: Text = "") -> Response:
    """The thread fragment (messages and the conversation's header); 204 when unchanged."""
    context = await _thread_context(page, conversation_id)
    if v and v == context["thread_version"]:
        return Response(status_code=204)
    context.update(await _filters_context(page))
    return page.render("fragments/thread.html", **context)


async def _after_action(page: Page, conversation_id: uuid.UUID, new_key: bool = False) -> Response:
    if is_htmx(page.request):
        context = await _thread_context(page, conversation_id)
        context.update(await _filters_context(page), new_reply_key=new_key)
        return page.render("fragments/thread.html", **context)
    return page.redirect(page.url(f"inbox/{conversation_id}"))


@router.post("/inbox/{conversation_id}/reply")
async def reply(request: Request, page: ReplyPage, conversation_id: uuid.UUID) -> Response:
    """A reply (sent through the API's own reply path and policy gate) or an internal note."""
    form = await page.form()
    fields = {"type": "text", "text": form.get("text") or None, "note": form.get("note") == "on"}
    body, _errors = parse_form(ReplyIn, fields)
    if body is None:
        raise Unprocessable("Write a message first (up to 4,096 characters).", code="empty_reply")
    key = str(form.get("idempotency_key") or "") or None
    await conversation_api.reply(
        page.granted,
        conversation_id,
        body,
        page.db,
        Auditor(request, page.db),
        idempotency_key=key[:200] if key else None,
    )
    return await _after_action(page, conversation_id, new_key=True)


@router.post("/inbox/{conversation_id}/typing")
async def typing(page: ReplyPage, conversation_id: uuid.UUID) -> Response:
    """The agent is writing a reply: the customer sees them typing, where the channel shows
    it (the API's own path). Sent by the reply box as they type, at most every few seconds."""
    await page.form()  # its CSRF check
    await conversation_api.show_typing(page.granted, conversation_id, page.db)
    return Response(status_code=204)


@router.post("/inbox/{conversation_id}/messages/{message_id}/resend")
async def resend(
    request: Request, page: ReplyPage, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> Response:
    """Resend of a failed message (the API's own path: a new message, policy gate, quota)."""
    await page.form()
    failed = await conversation_repository.get_message(page.db, page.granted, message_id)
    if failed.conversation_id != conversation_id:
        raise NotFound("Message not found.", code="message_not_found")
    await conversation_api.resend_message(
        page.granted, message_id, page.db, Auditor(request, page.db)
    )
    return await _after_action(page, conversation_id)


async def _update(
    request: Request, page: Page, conversation_id: uuid.UUID, fields: dict[str, Any]
) -> Response:
    body, errors = parse_form(ConversationUpdate, fields)
    if body is None:
        raise Unprocessable("That change is not valid.", details=errors)
    await conversation_api.update_conversation(
        page.granted, conversation_id, body, page.db, Auditor(request, page.db)
    )
    return await _after_action(page, conversation_id)


@router.post("/inbox/{conversation_id}/assign")
async def assign(request: Request, page: ManagePage, conversation_id: uuid.UUID) -> Response:
    form = await page.form()
    assignee = str(form.get("assignee_id") or "")
    fields: dict[str, Any] = {"assignee_id": assignee} if assignee else {"unassign": True}
    return await _update(request, page, conversation_id, fields)


@router.post("/inbox/{conversation_id}/status")
async def set_status(request: Request, page: ManagePage, conversation_id: uuid.UUID) -> Response:
    form = await page.form()
    return await _update(request, page, conversation_id, {"status": form.get("status")})


@router.post("/inbox/{conversation_id}/read")
async def mark_read(request: Request, page: ManagePage, conversation_id: uuid.UUID) -> Response:
    await page.form()
    return await _update(request, page, conversation_id, {"mark_read": True})
