"""Email broadcasts: the engine's protocol (broadcast/engine.py) with SMTP as the provider.

A contact's address is its `email` attribute (checked here: one `@`, no spaces or angle
brackets, at most 254 characters); without one the recipient is skipped `no_address`, and a
contact opted out of everything (`opted_out`) or of marketing email (`email_opted_out`,
the unsubscribe link) is skipped `opted_out`.

Per recipient, as for WhatsApp:
1. **Claim**: the batch is leased; opt-outs, quiet hours and variables are decided.
2. **Mark** (one transaction per chunk, committed before the first email leaves): the
   email's row is inserted in the `emails` outbox (kind `broadcast`, status `sending`, no
   lease, so the transactional sender and its sweeper never pick it up) and the recipient
   gets its id as `message_id`. A recipient with it is never claimed again.
3. **Send**: each email takes a slot of the platform's SMTP rate (BROADCAST_EMAIL_RATE per
   second, shared by every worker) right before it leaves; one SMTP connection per chunk.
4. **Outcome**: accepted → `sent`. Refused before DATA or at DATA with a reply code: a
   definite answer — 5xx fails the recipient (`smtp_<code>`), 4xx queues it again (up to
   MAX_ATTEMPTS). The server unreachable or the connection lost before DATA: the email
   provably did not leave — its row goes, the recipient is queued again after a back-off,
   however often (a server down loses nobody). Lost during or after DATA (timeout,
   disconnect): it may have been delivered — the recipient ends `failed` with
   `delivery_unknown` and is never sent again automatically. A worker killed after (2): the
   sweeper's `broadcast_emails` step ends it the same way.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from html import escape, unescape
from typing import Any

import aiosmtplib
from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy import Boolean, and_, bindparam, case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.broadcast import repository
from botplatform.broadcast.claim import ended, write_decisions
from botplatform.broadcast.driver import Driver
from botplatform.broadcast.personalise import (
    MissingVariable,
    quiet_until,
    recipient_zone,
    render_email,
)
from botplatform.config import Settings
from botplatform.email import smtp, unsubscribe
from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace
from botplatform.models import BroadcastRecipient, Contact, Email
from botplatform.models.base import table_of
from botplatform.worker.jobs import JobContext

log = get_logger("botplatform.broadcast.email")

EMAIL_ATTRIBUTE = "email"
KIND = "broadcast"
CHUNK = 8  # emails marked per commit, sent over one SMTP connection
MAX_ATTEMPTS = 8  # temporary (4xx) refusals per recipient before it fails
MAX_BACKOFF = 60.0
SLOT_WAIT_SECONDS = 5.0
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+$")


def address_of(attributes: dict[str, Any] | None) -> str | None:
    """The contact's email address (its `email` attribute), if it is one."""
    value = (attributes or {}).get(EMAIL_ATTRIBUTE)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if len(value) <= 254 and _ADDRESS.match(value) else None


async def contacts_with_email(
    db: AsyncSession, workspace_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[bool, str | None]]:
    """For each existing contact: (opted out of email, its email address or None)."""
    statement = select(
        Contact.id, Contact.opted_out, Contact.email_opted_out, Contact.attributes
    ).where(Contact.workspace_id == workspace_id, Contact.id.in_(list(contact_ids)))
    return {
        contact_id: (bool(opted_out or email_opted_out), address_of(attributes))
        for contact_id, opted_out, email_opted_out, attributes in (await db.execute(statement))
    }


# -- claim ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailReady:
    recipient_id: uuid.UUID
    contact_id: uuid.UUID
    address: str
    subject: str
    text: str | None
    html: str | None


async def claim(db: AsyncSession, driver: Driver, limit: int) -> list[MailReady] | None:
    """Leases a batch and decides each: ready, held (quiet hours) or skipped (opted out
    since, no address any more, a missing variable). None: nothing due."""
    now = utcnow()
    claimed = await repository.claim(
        db, driver.ws, driver.broadcast_id, now, driver.lease_until, limit
    )
    if not claimed:
        return None
    ids = [contact_id for _, contact_id, _ in claimed]
    statement = select(Contact).where(Contact.workspace_id == driver.ws, Contact.id.in_(ids))
    contacts = {c.id: c for c in (await db.execute(statement)).scalars()}
    ready: list[MailReady] = []
    outcomes: list[dict[str, Any]] = []
    for recipient_id, contact_id, address in claimed:
        decision = _decide(driver, now, contacts.get(contact_id), address)
        if isinstance(decision, tuple):
            assert address is not None
            ready.append(MailReady(recipient_id, contact_id, address, *decision))
        else:
            outcomes.append({"rid": recipient_id, **decision})
    await write_decisions(db, driver, outcomes)
    return ready


def _decide(
    driver: Driver, now: datetime, contact: Contact | None, address: str | None
) -> tuple[str, str | None, str | None] | dict[str, Any]:
    if contact is None or not address or address_of(contact.attributes) is None:
        return ended("skipped", "no_address", "The contact has no email address.")
    if contact.opted_out or contact.email_opted_out:
        return ended("skipped", "opted_out", "The contact has opted out of marketing email.")
    quiet = driver.broadcast["quiet"]
    if quiet:
        zone = recipient_zone(contact.attributes or {}, None, driver.broadcast["timezone"])
        until = quiet_until(now, zone, quiet[0], quiet[1])
        if until is not None:
            return {"status": "queued", "lease_until": None, "not_before": until,
                    "error_code": None, "error_title": None}  # fmt: skip
    try:
        return render_email(driver.broadcast["message"], contact.name, contact.attributes or {})
    except MissingVariable as exc:
        return ended("skipped", "missing_variable", f"No value for the variable {exc}.")


# -- mark -----------------------------------------------------------------------------------

_RCP = table_of(BroadcastRecipient)
_SET_EMAIL = update(_RCP).where(_RCP.c.id == bindparam("rid")).values(message_id=bindparam("mid"))


def _footer(text: str | None, markup: str | None, url: str) -> tuple[str, str | None]:
    """The bodies with the unsubscribe link at the end (a text part always: from the HTML
    when only that was given)."""
    if text is None:
        plain = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", markup or "", flags=re.S | re.I)
        text = unescape(re.sub(r"<[^>]+>", "", plain)).strip()
    text = f"{text.rstrip()}\n\n--\nUnsubscribe: {url}\n"
    if markup is not None:
        href = escape(url, quote=True)
        link = f'<p style="font-size:12px;color:#666"><a href="{href}">Unsubscribe</a></p>'
        closing = re.search(r"</body\s*>", markup, flags=re.I)
        if closing:
            markup = markup[: closing.start()] + link + markup[closing.start() :]
        else:
            markup = markup + link
    return text, markup


async def _mark(
    driver: Driver, chunk: list[MailReady], claim_lease: datetime
) -> list[tuple[MailReady, Email, str]] | None:
    """Inserts the chunk's outbox rows (the send marker), fenced by the claim's lease.
    Committed on return. None: the driver must stop (paused, cancelled, taken over)."""
    settings = driver.runtime.settings
    async with driver.runtime.db.unit_of_work() as db:
        await enter_workspace(db, driver.ws)
        if await driver.renew(db) != "running":
            return None
        mine_ids = await repository.hold_for_send(
            db, driver.ws, [item.recipient_id for item in chunk], claim_lease
        )
        marked: list[tuple[MailReady, Email, str]] = []
        for item in chunk:
            if item.recipient_id not in mine_ids:
                continue
            signed = unsubscribe.token(settings, driver.ws, item.contact_id, driver.broadcast_id)
            url = unsubscribe.link(settings, signed)
            text, markup = _footer(item.text, item.html, url)
            email = Email(
                id=uuid.uuid4(),
                kind=KIND,
                to_address=item.address,
                subject=item.subject[:300],
                text_body=text,
                html_body=markup,
                status="sending",
                lease_until=None,  # never the transactional sender's (nor its sweeper's)
                attempts=1,
            )
            marked.append((item, email, url))
        db.add_all([email for _, email, _ in marked])
        await db.flush()
        if marked:
            await core.run(
                db, _SET_EMAIL, [{"rid": i.recipient_id, "mid": e.id} for i, e, _ in marked]
            )
    return marked


# -- send -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    item: MailReady
    email: Email
    status: str  # sent | failed | retry | down | unknown
    code: str | None = None
    title: str | None = None


def build(settings: Settings, email: Email, unsubscribe_url: str) -> EmailMessage:
    """The message with its RFC 8058 headers: `List-Unsubscribe` (the signed link) and
    `List-Unsubscribe-Post: List-Unsubscribe=One-Click`."""
    message = smtp.build_message(settings, email)  # From, To, Subject, Date, Message-ID
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Precedence"] = "bulk"
    return message


async def _slot(driver: Driver) -> None:
    """A slot of the SMTP rate, shared by every worker (Redis, or memory when embedded)."""
    rate = RateLimitItemPerSecond(driver.runtime.settings.broadcast_email_rate)
    limiter = MovingWindowRateLimiter(driver.runtime.ratelimiter.storage)
    step = 1.0 / driver.runtime.settings.broadcast_email_rate
    while not await limiter.hit(rate, "smtp", "broadcast"):  # noqa: ASYNC110 - polls Redis
        await asyncio.sleep(step)


async def _connect(settings: Settings) -> aiosmtplib.SMTP:
    if not settings.smtp_host:
        raise aiosmtplib.SMTPConnectError("SMTP_HOST is not set")
    client = aiosmtplib.SMTP(**smtp.connection(settings))
    await client.connect()
    return client


def _refused(item: MailReady, email: Email, exc: aiosmtplib.SMTPResponseException) -> Outcome:
    """The server answered with a code: it did not take the message."""
    kind = "failed" if exc.code >= 500 else "retry"
    return Outcome(item, email, kind, f"smtp_{exc.code}", str(exc.message)[:500])


async def _send_one(
    client: aiosmtplib.SMTP, settings: Settings, item: MailReady, email: Email, url: str
) -> Outcome:
    sender = parseaddr(settings.smtp_from)[1] or settings.smtp_from
    message = build(settings, email, url)
    try:
        await client.mail(sender)
        await client.rcpt(item.address)
    except aiosmtplib.SMTPResponseException as exc:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            return Outcome(item, email, "down", "smtp_unavailable", "The connection was lost.")
        return _refused(item, email, exc)
    except (aiosmtplib.SMTPException, OSError) as exc:  # before DATA: it did not leave
        return Outcome(item, email, "down", "smtp_unavailable", str(exc)[:500])
    try:
        await client.data(message.as_bytes())
    except aiosmtplib.SMTPResponseException as exc:
        return _refused(item, email, exc)
    except (aiosmtplib.SMTPException, OSError) as exc:  # it may have been accepted
        log.warning("broadcast_email_unknown", email_id=str(email.id), error=str(exc))
        return Outcome(item, email, "unknown", "delivery_unknown", str(exc)[:500])
    return Outcome(item, email, "sent")


async def _deliver(driver: Driver, marked: list[tuple[MailReady, Email, str]]) -> list[Outcome]:
    """One connection for the chunk, one slot per email; when the server cannot be reached
    the rest of the chunk is given back untried."""
    settings = driver.runtime.settings
    outcomes: list[Outcome] = []
    client: aiosmtplib.SMTP | None = None
    try:
        for index, (item, email, url) in enumerate(marked):
            await _slot(driver)
            if client is None:
                try:
                    client = await _connect(settings)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    title = f"The SMTP server cannot be reached: {exc}"[:500]
                    rest = marked[index:]
                    down = "smtp_unavailable"
                    outcomes += [Outcome(i, e, "down", down, title) for i, e, _ in rest]
                    break
            outcome = await _send_one(client, settings, item, email, url)
            outcomes.append(outcome)
            if outcome.status in ("down", "unknown"):
                client.close()
                client = None
    finally:
        if client is not None:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
    return outcomes


async def send_chunk(driver: Driver, chunk: list[MailReady], claim_lease: datetime) -> bool:
    """Marks, sends and records one chunk; False when the driver must stop."""
    marked = await _mark(driver, chunk, claim_lease)
    if marked is None:
        return False
    if not marked:
        return True
    outcomes = await _deliver(driver, marked)
    if any(o.status == "down" for o in outcomes):
        driver.backoff = min(max(driver.backoff * 2, 1.0), MAX_BACKOFF)
        log.warning("broadcast_smtp_unavailable", broadcast_id=str(driver.broadcast_id))
    elif any(o.status == "sent" for o in outcomes):
        driver.backoff = 0.0
    await _write_outcomes(driver, outcomes)
    return True


# -- outcome --------------------------------------------------------------------------------

_EMAILS = table_of(Email)
_EMAIL_DONE = (
    update(_EMAILS)
    .where(_EMAILS.c.id == bindparam("eid"))
    .values(
        status=bindparam("email_status"),
        sent_at=bindparam("sent_at"),
        last_error=bindparam("title"),
        updated_at=bindparam("now"),
    )
)
# Provably not sent: the outbox row goes, so only a later attempt's row stays.
_EMAIL_DROP = delete(_EMAILS).where(_EMAILS.c.id == bindparam("eid"), _EMAILS.c.status == "sending")
_R = _RCP.c
_RCP_DONE = (
    update(_RCP)
    .where(_R.workspace_id == bindparam("ws"), _R.id == bindparam("rid"))
    .values(
        status=bindparam("status"),
        error_code=bindparam("code"),
        error_title=bindparam("title"),
        sent_at=bindparam("sent_at"),
        lease_until=None,
        updated_at=bindparam("now"),
    )
)
_RCP_AGAIN = (
    update(_RCP)
    .where(_R.workspace_id == bindparam("ws"), _R.id == bindparam("rid"))
    .values(
        # Unreachable: queued again however often; a temporary refusal: up to MAX_ATTEMPTS.
        status=case(
            (and_(bindparam("limited", type_=Boolean), _R.attempts >= MAX_ATTEMPTS), "failed"),
            else_="queued",
        ),
        message_id=None,
        error_code=bindparam("code"),
        error_title=bindparam("title"),
        lease_until=None,
        not_before=bindparam("not_before"),
        updated_at=bindparam("now"),
    )
)


async def _write_outcomes(driver: Driver, outcomes: list[Outcome]) -> None:
    now = utcnow()
    later = now + timedelta(seconds=max(driver.backoff, 1.0))
    done: list[dict[str, Any]] = []
    again: list[dict[str, Any]] = []
    for o in outcomes:
        row = {
            "ws": driver.ws,
            "rid": o.item.recipient_id,
            "eid": o.email.id,
            "code": o.code,
            "title": o.title,
            "now": now,
        }
        if o.status == "sent":
            done.append({**row, "status": "sent", "email_status": "sent", "sent_at": now})
        elif o.status in ("failed", "unknown"):
            email_status = "failed" if o.status == "failed" else "unknown"
            done.append({**row, "status": "failed", "email_status": email_status, "sent_at": None})
        else:
            again.append({**row, "limited": o.status == "retry", "not_before": later})
    async with driver.runtime.db.unit_of_work() as db:
        await enter_workspace(db, driver.ws)
        if done:
            await core.run(db, _EMAIL_DONE, done)
            await core.run(db, _RCP_DONE, done)
        if again:
            await core.run(db, _EMAIL_DROP, again)
            await core.run(db, _RCP_AGAIN, again)


# -- the sweeper ----------------------------------------------------------------------------


async def reconcile(ctx: JobContext) -> int:
    """Recipients whose email was marked but whose outcome was never written (the worker
    died mid-send) and whose driver lease has long run out: it may have been accepted, so
    it ends `failed` / `delivery_unknown`, never sent again (system scope)."""
    settings = ctx.runtime.settings
    cutoff = utcnow() - timedelta(
        seconds=settings.send_lease_seconds + 2 * settings.smtp_timeout_seconds
    )
    statement = (
        select(BroadcastRecipient, Email)
        .join(Email, Email.id == BroadcastRecipient.message_id)
        .where(
            BroadcastRecipient.status == "sending",
            Email.kind == KIND,
            Email.status == "sending",
            Email.created_at < cutoff,
        )
        .limit(500)
    )
    rows = (await ctx.db.execute(statement)).all()
    for recipient, email in rows:
        recipient.status, recipient.lease_until = "failed", None
        recipient.error_code = "delivery_unknown"
        recipient.error_title = "The worker stopped while the email was being sent."
        email.status = "unknown"
    return len(rows)
