"""Contacts (search, detail with identities, attributes and the consent ledger) and channels
(the guided WhatsApp connection, each channel's health)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, Response

from botplatform.audit.dependencies import Auditor
from botplatform.authz.permissions import Permission
from botplatform.channel import endpoints as channel_api
from botplatform.channel import repository as channel_repository
from botplatform.channel import sandbox
from botplatform.channel.schemas import (
    ChannelUpdate,
    InstagramChannelCreate,
    MessengerChannelCreate,
    SandboxChannelCreate,
    SlackChannelCreate,
    TelegramChannelCreate,
    WebchatChannelCreate,
    WhatsAppChannelCreate,
)
from botplatform.conversation import endpoints as conversation_api
from botplatform.conversation import repository as conversation_repository
from botplatform.dashboard.web import Page, PageRoute, attempt, parse_form, ws_page
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import AppError
from botplatform.kit.pagination import PageParams
from botplatform.models import Conversation
from botplatform.privacy import endpoints as privacy_api

router = APIRouter(prefix="/app/w/{ws}", route_class=PageRoute, include_in_schema=False)
Text = Annotated[str, Query(max_length=100)]
Cursor = Annotated[str | None, Query(max_length=200)]

ContactsPage = Annotated[Page, ws_page(Permission.CONTACTS_READ)]
ChannelsPage = Annotated[Page, ws_page(Permission.CHANNELS_READ)]
ChannelsManagePage = Annotated[Page, ws_page(Permission.CHANNELS_MANAGE)]
ContactsExportPage = Annotated[Page, ws_page(Permission.CONTACTS_EXPORT)]
PrivacyErasePage = Annotated[Page, ws_page(Permission.PRIVACY_ERASE)]


@router.get("/contacts")
async def contacts(page: ContactsPage, q: Text = "", cursor: Cursor = None) -> Response:
    answer = await conversation_api.list_contacts(
        page.granted, page.db, PageParams(50, cursor), q or None
    )
    return page.render(
        "app/contacts.html", contacts=answer.data.items, next_cursor=answer.data.next_cursor, q=q
    )


@router.get("/contacts/{contact_id}")
async def contact(page: ContactsPage, contact_id: uuid.UUID) -> Response:
    answer = await conversation_api.get_contact(page.granted, contact_id, page.db, page.runtime)
    conversations: list[Conversation] = []
    if page.can(Permission.CONVERSATIONS_READ):
        statement = conversation_repository.conversations(page.granted, None, None, None).where(
            Conversation.contact_id == contact_id
        )
        conversations = list((await page.db.execute(statement)).scalars())
    listed = await page.db.execute(channel_repository.list_statement(page.granted))
    channels = {channel.id: channel.name for channel in listed.scalars()}
    return page.render(
        "app/contact.html", contact=answer.data, conversations=conversations, channels=channels
    )


@router.get("/contacts/{contact_id}/export")
async def export_contact(
    request: Request, page: ContactsExportPage, contact_id: uuid.UUID
) -> Response:
    """The API's export, as a file to download (audited there)."""
    answer = await privacy_api.export_contact(
        page.granted, contact_id, page.db, Auditor(request, page.db), page.runtime
    )
    return Response(
        answer.data.model_dump_json(indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="contact-{contact_id}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/contacts/{contact_id}/erase")
async def erase_contact(
    request: Request, page: PrivacyErasePage, contact_id: uuid.UUID
) -> Response:
    await page.form()
    await privacy_api.erase_contact(page.granted, contact_id, page.db, Auditor(request, page.db))
    return page.redirect(page.url("contacts"), "removed")


# --- channels --------------------------------------------------------------------------------

HEALTH_WINDOW = timedelta(hours=24)


async def _health(page: Page, channel_id: uuid.UUID) -> dict[str, Any]:
    """What an operator wants to know at a glance: is anything arriving, is anything failing."""
    last_event, counts = await channel_repository.activity(
        page.db, page.ws, channel_id, utcnow() - HEALTH_WINDOW
    )
    failed, total = counts.get("failed", 0), sum(counts.values())
    healthy = failed * 10 <= total
    # Nothing has ever arrived: the webhook is not set up (or not yet used), which is
    # not "healthy" — unless sending works, which then says more than silence does.
    verdict = "failing" if not healthy else ("no_webhook" if last_event is None else "healthy")
    return {
        "last_event_at": last_event,
        "sent_24h": total,
        "failed_24h": failed,
        "waiting": counts.get("queued", 0) + counts.get("sending", 0),
        "healthy": healthy and last_event is not None,
        "verdict": verdict,
    }


@router.get("/channels")
async def channels(page: ChannelsPage) -> Response:
    answer = await channel_api.list_channels(
        page.granted, page.db, PageParams(200, None), page.runtime
    )
    health = {c.id: await _health(page, c.id) for c in answer.data.items}
    return page.render(
        "app/channels.html",
        channels=answer.data.items,
        health=health,
        sandbox_url=_sandbox_url(page),
        meta_sandbox_url=_meta_sandbox_url(page),
    )


def _meta_sandbox_url(page: Page) -> str | None:
    """Where the Meta sandbox should be running, if Messenger calls go to one."""
    base = page.runtime.settings.messenger_api_base_url
    host = (urlsplit(base).hostname or "").lower()
    return base if host and host not in sandbox.META_HOSTS else None


def _sandbox_url(page: Page) -> str | None:
    """Where the WhatsApp sandbox should be running, if WhatsApp calls go to one."""
    settings = page.runtime.settings
    return settings.whatsapp_api_base_url if sandbox.is_configured(settings) else None


@router.post("/channels/sandbox")
async def create_sandbox_channel(request: Request, page: ChannelsManagePage) -> Response:
    """'Connect the sandbox': one click, no ids or secrets to copy."""
    form = await page.form()
    fields = {"name": form["name"]} if form.get("name") else {}
    if form.get("provider"):
        fields["provider"] = form["provider"]
    body, errors = parse_form(SandboxChannelCreate, fields)
    if body is None:
        raise AppError("That name is not valid.", code="validation_error", details=errors)
    answer = await channel_api.create_sandbox_channel(
        page.granted, body, page.db, page.runtime, Auditor(request, page.db)
    )
    return page.redirect(page.url(f"channels/{answer.data.id}"), "channel_created")


@router.post("/channels/{channel_id}/sandbox")
async def reconnect_sandbox_channel(
    request: Request, page: ChannelsManagePage, channel_id: uuid.UUID
) -> Response:
    await page.form()
    await channel_api.reconnect_sandbox_channel(
        page.granted, channel_id, page.db, page.runtime, Auditor(request, page.db)
    )
    return page.redirect(page.url(f"channels/{channel_id}"), "sandbox_connected")


#: The form of each provider the dashboard connects: its model and its own fields.
CHANNEL_FORMS: dict[str, tuple[type[Any], tuple[str, ...], int]] = {
    "whatsapp": (
        WhatsAppChannelCreate,
        ("phone_number_id", "business_account_id", "display_phone_number"),
        80,
    ),
    "messenger": (MessengerChannelCreate, ("page_id",), 300),
    "instagram": (InstagramChannelCreate, ("instagram_account_id", "page_id"), 300),
    "webchat": (WebchatChannelCreate, ("welcome_message", "primary_color"), 1000),
    "slack": (SlackChannelCreate, ("bot_token", "signing_secret"), 20),
    "telegram": (TelegramChannelCreate, ("bot_token",), 30),
}
ProviderQuery = Annotated[
    str, Query(pattern="^(whatsapp|messenger|instagram|webchat|slack|telegram)$")
]
#: Form fields never shown back after a refused form.
SECRET_INPUTS = frozenset({"access_token", "app_secret", "bot_token", "signing_secret"})


@router.get("/channels/new")
async def new_channel(page: ChannelsManagePage, provider: ProviderQuery = "whatsapp") -> Response:
    return page.render("app/channel_new.html", values={}, provider=provider)


def _webchat_fields(form: Any) -> dict[str, Any]:
    origins = str(form.get("allowed_origins") or "").split()
    fields: dict[str, Any] = {"provider": "webchat", "allowed_origins": origins}
    for name in ("name", "welcome_message", "primary_color", "auto_reply"):
        fields[name] = form.get(name) or None
    fields["pre_chat_fields"] = form.getlist("pre_chat_fields")
    return fields


def _channel_fields(form: Any, provider: str) -> dict[str, Any]:
    if provider == "webchat":
        return _webchat_fields(form)
    model, own, rate = CHANNEL_FORMS[provider]
    names = ("name", *own, "access_token", "app_secret", "verify_token", "auto_reply")
    fields: dict[str, Any] = {
        name: (form.get(name) or None) for name in names if name in model.model_fields
    }
    fields["send_rate_per_second"] = form.get("send_rate_per_second") or rate
    if provider != "whatsapp":
        fields["provider"] = provider
    return fields


@router.post("/channels")
async def create_channel(request: Request, page: ChannelsManagePage) -> Response:
    form = await page.form()
    provider = str(form.get("provider") or "whatsapp")
    if provider not in CHANNEL_FORMS:
        raise AppError(
            "Choose WhatsApp, Messenger, Instagram, Telegram, Slack or a website chat.",
            code="validation_error",
        )
    fields = _channel_fields(form, provider)
    shown = {k: v for k, v in fields.items() if k not in SECRET_INPUTS}
    if provider == "webchat":  # the textarea shows the sites one per line again
        shown["allowed_origins"] = "\n".join(fields["allowed_origins"])
    body, errors = parse_form(CHANNEL_FORMS[provider][0], fields)
    try:
        if body is None:
            return page.render(
                "app/channel_new.html", 422, values=shown, errors=errors, provider=provider
            )
        answer = await attempt(
            page.db,
            lambda: channel_api.create_channel(
                page.granted, body, page.db, page.runtime, Auditor(request, page.db)
            ),
        )
    except AppError as exc:
        return page.render(
            "app/channel_new.html",
            exc.status_code,
            values=shown,
            error=exc.message,
            provider=provider,
        )
    return page.redirect(page.url(f"channels/{answer.data.id}"), "channel_created")


@router.get("/channels/{channel_id}")
async def channel(page: ChannelsPage, channel_id: uuid.UUID) -> Response:
    answer = await channel_api.get_channel(page.granted, channel_id, page.db, page.runtime)
    return page.render(
        "app/channel.html",
        channel=answer.data,
        health=await _health(page, channel_id),
        sandbox_url=_sandbox_url(page),
        meta_sandbox_url=_meta_sandbox_url(page),
    )


@router.post("/channels/{channel_id}")
async def update_channel(
    request: Request, page: ChannelsManagePage, channel_id: uuid.UUID
) -> Response:
    form = await page.form()
    fields = {
        "name": form.get("name") or None,
        "status": form.get("status") or None,
        "auto_reply": form.get("auto_reply", ""),
        "phone_number_id": form.get("phone_number_id") or None,
    }
    body, errors = parse_form(ChannelUpdate, fields)
    if body is None:
        raise AppError("That change is not valid.", code="validation_error", details=errors)
    await channel_api.update_channel(
        page.granted, channel_id, body, page.db, page.runtime, Auditor(request, page.db)
    )
    return page.redirect(page.url(f"channels/{channel_id}"), "saved")


@router.post("/channels/{channel_id}/delete")
async def delete_channel(
    request: Request, page: ChannelsManagePage, channel_id: uuid.UUID
) -> Response:
    await page.form()
    await channel_api.delete_channel(
        page.granted, channel_id, page.db, page.runtime, Auditor(request, page.db)
    )
    return page.redirect(page.url("channels"), "removed")
