"""The unsubscribe link of marketing email (email/unsubscribe.py): public, no login; the
signed token is the authority. Answers are small HTML pages, errors too (400 for an altered
or expired link, 404 for a contact that is gone), never a 500."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from botplatform.db import DbSession
from botplatform.email import unsubscribe
from botplatform.kit.errors import AppError
from botplatform.models import Workspace
from botplatform.runtime import RuntimeDep

public_router = APIRouter(prefix="/email", tags=["email"])


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        '<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;'
        'padding:0 1rem">'
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def _error(exc: AppError) -> HTMLResponse:
    return _page("Unsubscribe", f"<p>{escape(exc.message)}</p>", exc.status_code)


@public_router.get("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe_page(token: str, db: DbSession, runtime: RuntimeDep) -> HTMLResponse:
    """The link in a marketing email: a confirmation page with one button (a POST to the
    same address). Changes nothing by itself: mail scanners open links."""
    try:
        subscriber = unsubscribe.read(runtime.settings, token)
        contact = await unsubscribe.contact_of(db, subscriber)
    except AppError as exc:
        return _error(exc)
    workspace = await db.get(Workspace, subscriber.workspace_id)
    sender = escape(workspace.name) if workspace else "this sender"
    if contact.email_opted_out:
        told = f"<p>You no longer receive marketing email from {sender}.</p>"
        return _page("Unsubscribed", told + _resubscribe_form(token))
    form = (
        f"<p>Stop receiving marketing email from {sender}?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return _page("Unsubscribe", form)


@public_router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe_now(token: str, db: DbSession, runtime: RuntimeDep) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058: a mail client POSTs `List-Unsubscribe=One-Click`;
    the confirmation page's button posts the same). Opts the contact out of marketing email
    and records it in the consent ledger; again is harmless (200, nothing new recorded)."""
    try:
        subscriber = unsubscribe.read(runtime.settings, token)
        await unsubscribe.unsubscribe(db, subscriber)
    except AppError as exc:
        return _error(exc)
    told = "<p>You will no longer receive these emails.</p>"
    return _page("Unsubscribed", told + _resubscribe_form(token))


def _resubscribe_form(token: str) -> str:
    """Changed your mind? The same signed link, posted to `resubscribe`."""
    action = escape(f"{public_router.prefix}/resubscribe/{token}")
    return (
        f'<form method="post" action="{action}"><p>Unsubscribed by mistake?</p>'
        '<button type="submit">Subscribe again</button></form>'
    )


@public_router.post("/resubscribe/{token}", response_class=HTMLResponse)
async def resubscribe_now(token: str, db: DbSession, runtime: RuntimeDep) -> HTMLResponse:
    """The button on the unsubscribed page: the contact opts back in to marketing email
    (the same signed token; recorded in the consent ledger as `opt_in`). Again is harmless."""
    try:
        subscriber = unsubscribe.read(runtime.settings, token)
        await unsubscribe.resubscribe(db, subscriber)
    except AppError as exc:
        return _error(exc)
    return _page("Subscribed", "<p>You will receive these emails again.</p>")
