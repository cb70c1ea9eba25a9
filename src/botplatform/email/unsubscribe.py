"""The unsubscribe link of marketing email (RFC 8058 one-click): a signed token naming the
workspace and the contact (and the broadcast, for the ledger's detail). Opening it (GET)
shows a confirmation page and changes nothing — mail scanners follow links; a POST (the
page's button, or a mail client's one-click `List-Unsubscribe=One-Click`) opts the contact
out of marketing email: `contacts.email_opted_out` and a `ConsentEvent(opt_out,
email_unsubscribe)`. Both are idempotent: a second POST records nothing new."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.config import Settings
from botplatform.kit.errors import BadRequest, NotFound
from botplatform.kit.scoping import enter_workspace, scoped
from botplatform.kit.tokens import InvalidToken, LinkSigner
from botplatform.models import ConsentEvent, Contact

PURPOSE = "email-unsubscribe"
SOURCE = "email_unsubscribe"
RESUBSCRIBE_SOURCE = "email_resubscribe"
PATH = "/email/unsubscribe/"


@dataclass(frozen=True)
class Subscriber:
    workspace_id: uuid.UUID
    contact_id: uuid.UUID
    broadcast_id: uuid.UUID | None


def _signer(settings: Settings) -> LinkSigner:
    return LinkSigner(settings.signing_key, PURPOSE)


def token(
    settings: Settings, workspace_id: uuid.UUID, contact_id: uuid.UUID, broadcast_id: uuid.UUID
) -> str:
    payload = {"w": str(workspace_id), "c": str(contact_id), "b": str(broadcast_id)}
    return _signer(settings).sign(payload)


def link(settings: Settings, signed: str) -> str:
    return settings.app_url.rstrip("/") + PATH + signed


def read(settings: Settings, signed: str) -> Subscriber:
    """The token's subscriber; 400 `invalid_token` when it is altered, expired or not one."""
    max_age = settings.email_unsubscribe_ttl_days * 24 * 3600
    try:
        payload = _signer(settings).load(signed, max_age)
        broadcast = payload.get("b")
        return Subscriber(
            uuid.UUID(str(payload["w"])),
            uuid.UUID(str(payload["c"])),
            uuid.UUID(str(broadcast)) if broadcast else None,
        )
    except (InvalidToken, KeyError, ValueError) as exc:
        raise BadRequest(
            "This unsubscribe link is not valid (altered or expired).", code="invalid_token"
        ) from exc


async def contact_of(db: AsyncSession, subscriber: Subscriber) -> Contact:
    """The token's contact, read inside its workspace only; 404 when it is gone."""
    await enter_workspace(db, subscriber.workspace_id)
    statement = scoped(Contact, subscriber.workspace_id).where(Contact.id == subscriber.contact_id)
    contact = (await db.execute(statement)).scalar_one_or_none()
    if contact is None:
        raise NotFound("This subscriber no longer exists.", code="contact_not_found")
    return contact


async def unsubscribe(db: AsyncSession, subscriber: Subscriber) -> bool:
    """Opts the contact out of marketing email; False when it already was (nothing new)."""
    return await _set_opted_out(db, subscriber, True)


async def resubscribe(db: AsyncSession, subscriber: Subscriber) -> bool:
    """The same link, the other way: the contact who unsubscribed asks for marketing email
    again (`opt_in` in the consent ledger, its own consent); False when it was not opted out.
    The contact's opt-out of everything (a STOP) is not touched: only that opts back in."""
    return await _set_opted_out(db, subscriber, False)


async def _set_opted_out(db: AsyncSession, subscriber: Subscriber, opted_out: bool) -> bool:
    contact = await contact_of(db, subscriber)
    if contact.email_opted_out == opted_out:
        return False
    contact.email_opted_out = opted_out
    detail = f"broadcast {subscriber.broadcast_id}" if subscriber.broadcast_id else None
    db.add(
        ConsentEvent(
            workspace_id=subscriber.workspace_id,
            contact_id=contact.id,
            action="opt_out" if opted_out else "opt_in",
            source=SOURCE if opted_out else RESUBSCRIBE_SOURCE,
            channel_id=None,
            detail=detail,
        )
    )
    await db.flush()
    return True
