"""Email broadcasts against a real SMTP server (aiosmtpd): each contact with an address gets
its email once, with its own variables and a signed one-click unsubscribe link (RFC 8058)
that writes the consent ledger; a server that cannot be reached loses nobody, an answer lost
after DATA is never sent again."""

from __future__ import annotations

import asyncio
import email.message
import email.policy
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from botplatform.email import unsubscribe
from botplatform.kit.tokens import LinkSigner
from botplatform.models import ConsentEvent, Contact, Email
from botplatform.runtime import Runtime
from tests.conftest import Account, Api, SmtpSink, eventually
from tests.segment.helpers import Person, seed
from tests.serving import free_port

MESSAGE = {
    "type": "email",
    "subject": "Spring sale for {{first}}",
    "text": "Hello {{first}}, your code is {{code}}.",
    "html": "<html><body><p>Hello <b>{{first}}</b>, code {{code}}</p></body></html>",
    "variables": {
        "first": {"attribute": "name"},
        "code": {"attribute": "code", "default": "SPRING"},
    },
}


class Mailer:
    def __init__(self, api: Api, owner: Account, ws: str) -> None:
        self.api, self.owner, self.ws = api, owner, ws

    @property
    def base(self) -> str:
        return f"/api/v1/workspaces/{self.ws}/broadcasts"

    async def create(self, contact_ids: list[uuid.UUID], **extra: Any) -> dict[str, Any]:
        body = {
            "name": "Spring mail",
            "message": MESSAGE,
            "audience": {"type": "list", "contact_ids": [str(c) for c in contact_ids]},
            **extra,
        }
        response = await self.api.http.post(self.base, json=body, headers=self.owner.headers)
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    async def start(self, broadcast_id: str) -> None:
        response = await self.api.http.post(
            f"{self.base}/{broadcast_id}/start", headers=self.owner.headers
        )
        assert response.status_code == 200, response.text

    async def get(self, broadcast_id: str) -> dict[str, Any]:
        response = await self.api.http.get(
            f"{self.base}/{broadcast_id}", headers=self.owner.headers
        )
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])

    async def finished(self, broadcast_id: str, timeout: float = 30) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            found = await self.get(broadcast_id)
            return found if found["status"] in ("completed", "cancelled", "failed") else None

        return dict(await eventually(done, timeout=timeout, interval=0.2))

    async def recipients(self, broadcast_id: str) -> list[dict[str, Any]]:
        response = await self.api.http.get(
            f"{self.base}/{broadcast_id}/recipients",
            params={"limit": 200},
            headers=self.owner.headers,
        )
        assert response.status_code == 200, response.text
        return list(response.json()["data"]["items"])


async def mailer(api: Api) -> Mailer:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Tea & Co")
    return Mailer(api, owner, ws)


def _path(url: str) -> str:
    parsed = urlparse(url)
    return parsed.path


def _unsubscribe_url(message: email.message.EmailMessage) -> str:
    header = str(message["List-Unsubscribe"])
    assert header.startswith("<") and header.endswith(">")
    return header[1:-1]


async def _ledger(runtime: Runtime, contact_id: uuid.UUID) -> list[ConsentEvent]:
    async with runtime.db.unit_of_work(system=True) as db:
        statement = select(ConsentEvent).where(ConsentEvent.contact_id == contact_id)
        return list((await db.execute(statement)).scalars())


async def _contact(runtime: Runtime, contact_id: uuid.UUID) -> Contact:
    async with runtime.db.unit_of_work(system=True) as db:
        contact = await db.get(Contact, contact_id)
        assert contact is not None
        return contact


async def test_email_broadcast_reaches_each_address_once_and_unsubscribes_in_one_click(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, smtp: SmtpSink
) -> None:
    shop = await mailer(api)
    ws = uuid.UUID(shop.ws)
    ids = await seed(
        runtime,
        ws,
        [
            Person("Ann", attributes={"email": "ann@example.com", "code": "A<1>"}),
            Person("Bob", attributes={"email": " bob@example.com "}),
            Person("Cat", attributes={"phone_only": True}),  # no address
            Person("Dan", attributes={"email": "not an address"}),  # not an address
            Person("Eve", attributes={"email": "eve@example.com"}),
        ],
    )
    async with runtime.db.unit_of_work(system=True) as db:
        eve = await db.get(Contact, ids["Eve"])
        assert eve is not None
        eve.email_opted_out = True  # unsubscribed earlier
    created = await shop.create(list(ids.values()))
    assert created["channel_id"] is None and created["message"]["type"] == "email"
    await shop.start(created["id"])
    done = await shop.finished(created["id"])
    assert done["status"] == "completed"
    counts = done["counts"]
    assert counts["sent"] == 2 and counts["total"] == 5
    assert counts["skipped_by_reason"] == {"no_address": 2, "opted_out": 1}

    await eventually(lambda: len(smtp.messages) >= 2)
    await asyncio.sleep(0.3)
    assert sorted(str(m["To"]) for m in smtp.messages) == ["ann@example.com", "bob@example.com"]
    (ann,) = smtp.to("ann@example.com")
    (bob,) = smtp.to("bob@example.com")
    assert ann["Subject"] == "Spring sale for Ann"
    assert bob["Subject"] == "Spring sale for Bob"
    assert ann["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    ann_text = ann.get_body(("plain",)).get_content()
    ann_html = ann.get_body(("html",)).get_content()
    assert "Hello Ann, your code is A<1>." in ann_text
    assert "code A&lt;1&gt;" in ann_html  # values escaped in HTML
    assert "your code is SPRING" in bob.get_body(("plain",)).get_content()  # the default
    ann_url, bob_url = _unsubscribe_url(ann), _unsubscribe_url(bob)
    assert ann_url != bob_url  # per recipient
    assert ann_url in ann_text and ann_url.replace("&", "&amp;") in ann_html
    # Each recipient's email is its outbox row, sent.
    rows = await shop.recipients(created["id"])
    sent = [r for r in rows if r["status"] == "sent"]
    async with runtime.db.unit_of_work(system=True) as db:
        for row in sent:
            outbox = await db.get(Email, uuid.UUID(row["message_id"]))
            assert outbox is not None and outbox.status == "sent" and outbox.kind == "broadcast"

    # GET shows a confirmation and changes nothing (mail scanners open links).
    page = await client.get(_path(ann_url))
    assert page.status_code == 200 and "<form" in page.text and "Tea &amp; Co" in page.text
    assert await _ledger(runtime, ids["Ann"]) == []
    # One click (RFC 8058): no login, the body as mail clients send it.
    one_click = await client.post(
        _path(ann_url),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200, one_click.text
    (entry,) = await _ledger(runtime, ids["Ann"])
    assert (entry.action, entry.source, entry.workspace_id) == ("opt_out", "email_unsubscribe", ws)
    assert entry.detail == f"broadcast {created['id']}"
    contact = await _contact(runtime, ids["Ann"])
    assert contact.email_opted_out and not contact.opted_out  # WhatsApp is unaffected
    again = await client.post(_path(ann_url), content=b"List-Unsubscribe=One-Click")
    assert again.status_code == 200
    assert len(await _ledger(runtime, ids["Ann"])) == 1  # idempotent
    assert "no longer" in (await client.get(_path(ann_url))).text

    # Unsubscribed by mistake: the page's button opts her back in (the same signed token).
    unsubscribed = await client.get(_path(ann_url))
    token = _path(ann_url).rsplit("/", 1)[1]
    assert f'action="/email/resubscribe/{token}"' in unsubscribed.text
    back = await client.post(f"/email/resubscribe/{token}")
    assert back.status_code == 200 and "again" in back.text
    assert not (await _contact(runtime, ids["Ann"])).email_opted_out
    entries = sorted(await _ledger(runtime, ids["Ann"]), key=lambda e: e.created_at)
    assert [(e.action, e.source) for e in entries] == [
        ("opt_out", "email_unsubscribe"),
        ("opt_in", "email_resubscribe"),
    ]
    assert (await client.post(f"/email/resubscribe/{token}")).status_code == 200
    assert len(await _ledger(runtime, ids["Ann"])) == 2  # idempotent
    assert (await client.post(f"/email/resubscribe/{token}x")).status_code == 400
    await client.post(_path(ann_url), content=b"List-Unsubscribe=One-Click")  # out again

    # The next email broadcast skips her.
    smtp.reset()
    second = await shop.create([ids["Ann"], ids["Bob"]])
    await shop.start(second["id"])
    done = await shop.finished(second["id"])
    assert done["counts"]["sent"] == 1
    assert done["counts"]["skipped_by_reason"] == {"opted_out": 1}
    await eventually(lambda: smtp.to("bob@example.com"))
    assert smtp.to("ann@example.com") == []


async def test_a_tampered_or_foreign_unsubscribe_link_is_refused(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    shop = await mailer(api)
    other = await mailer(api)
    mine = await seed(runtime, uuid.UUID(shop.ws), [Person("Ann", attributes={"email": "a@x.io"})])
    zed = Person("Zed", attributes={"email": "z@x.io"})
    theirs = await seed(runtime, uuid.UUID(other.ws), [zed])
    settings = runtime.settings
    good = unsubscribe.token(settings, uuid.UUID(shop.ws), mine["Ann"], uuid.uuid4())
    base = unsubscribe.PATH

    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    for method in ("GET", "POST"):
        for token in (tampered, "not-a-token", good + "x"):
            response = await client.request(method, base + token)
            assert response.status_code == 400, (method, token, response.text)
    # Signed for another purpose (a password-reset link's signer): refused too.
    foreign_purpose = LinkSigner(settings.signing_key, "password-reset").sign(
        {"w": shop.ws, "c": str(mine["Ann"])}
    )
    assert (await client.post(base + foreign_purpose)).status_code == 400
    # Tenant isolation: a token naming workspace A with B's contact finds nobody.
    crossed = unsubscribe.token(settings, uuid.UUID(shop.ws), theirs["Zed"], uuid.uuid4())
    assert (await client.get(base + crossed)).status_code == 404
    assert (await client.post(base + crossed)).status_code == 404
    assert not (await _contact(runtime, theirs["Zed"])).email_opted_out
    assert await _ledger(runtime, theirs["Zed"]) == []
    # The genuine link works.
    assert (await client.post(base + good)).status_code == 200
    assert (await _contact(runtime, mine["Ann"])).email_opted_out


async def test_validation_of_email_broadcasts(client: httpx.AsyncClient, api: Api) -> None:
    shop = await mailer(api)
    contact = str(uuid.uuid4())
    cases: list[dict[str, Any]] = [
        {"message": {**MESSAGE, "subject": None}},  # no subject
        {"message": {"type": "email", "subject": "Hi"}},  # no body
        {"channel_id": str(uuid.uuid4())},  # email has no channel
        {"audience": {"type": "list", "phones": ["+15550000001"]}},  # numbers, no addresses
        {"message": {"type": "text", "text": "hi"}},  # a text broadcast needs a channel
        {"message": {**MESSAGE, "subject": "Hi {{unknown}}"}},  # a placeholder without a variable
    ]
    for extra in cases:
        body = {
            "name": "Bad",
            "message": MESSAGE,
            "audience": {"type": "list", "contact_ids": [contact]},
            **extra,
        }
        response = await client.post(shop.base, json=body, headers=shop.owner.headers)
        assert response.status_code == 422, (extra, response.text)


async def test_smtp_server_down_is_retried_not_lost(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, smtp: SmtpSink
) -> None:
    shop = await mailer(api)
    ids = await seed(
        runtime,
        uuid.UUID(shop.ws),
        [Person(f"P{i}", attributes={"email": f"p{i}@example.com"}) for i in range(3)],
    )
    original = runtime.settings
    runtime.settings = original.model_copy(update={"smtp_port": free_port()})  # nobody there
    try:
        created = await shop.create(list(ids.values()))
        await shop.start(created["id"])

        async def refused() -> bool:
            rows = await shop.recipients(created["id"])
            return all(r["error_code"] == "smtp_unavailable" and r["attempts"] >= 2 for r in rows)

        await eventually(refused, timeout=30, interval=0.3)
        found = await shop.get(created["id"])
        assert found["status"] == "running" and found["counts"]["failed"] == 0
        assert smtp.messages == []
    finally:
        runtime.settings = original
    done = await shop.finished(created["id"], timeout=40)
    assert done["counts"]["sent"] == 3 and done["counts"]["failed"] == 0
    await asyncio.sleep(0.5)
    assert sorted(str(m["To"]) for m in smtp.messages) == [
        "p0@example.com",
        "p1@example.com",
        "p2@example.com",
    ]
    async with runtime.db.unit_of_work(system=True) as db:  # the refused attempts left no row
        statuses = [e.status for e in (await db.execute(select(Email))).scalars()]
    assert sorted(statuses) == ["sent", "sent", "sent"]


class _SlowAfterData:
    """Takes the message, then never answers in time: the client cannot know it was taken."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(str(message["To"]))
        await asyncio.sleep(3)
        return "250 OK"


@pytest.fixture
def slow_smtp() -> Iterator[tuple[_SlowAfterData, int]]:
    handler = _SlowAfterData()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


async def test_an_answer_lost_after_data_is_never_sent_again(
    client: httpx.AsyncClient,
    api: Api,
    runtime: Runtime,
    slow_smtp: tuple[_SlowAfterData, int],
) -> None:
    handler, port = slow_smtp
    shop = await mailer(api)
    ids = await seed(runtime, uuid.UUID(shop.ws), [Person("Ann", attributes={"email": "a@x.io"})])
    original = runtime.settings
    runtime.settings = original.model_copy(update={"smtp_port": port, "smtp_timeout_seconds": 0.5})
    try:
        created = await shop.create(list(ids.values()))
        await shop.start(created["id"])
        done = await shop.finished(created["id"], timeout=30)
    finally:
        runtime.settings = original
    (row,) = await shop.recipients(created["id"])
    assert (row["status"], row["error_code"]) == ("failed", "delivery_unknown")
    assert done["counts"]["failed_by_code"] == {"delivery_unknown": 1}
    await asyncio.sleep(1.0)
    assert handler.received == ["a@x.io"]  # it went once, and is not sent again


async def test_an_email_marked_by_a_worker_that_died_ends_delivery_unknown(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, smtp: SmtpSink
) -> None:
    """Killed between the mark's commit and the outcome: the email may have left, so the
    sweeper ends it `delivery_unknown` and nothing sends it again."""
    from datetime import timedelta

    from botplatform.kit.clock import utcnow
    from botplatform.models import Broadcast, BroadcastRecipient
    from botplatform.worker.jobs import JobContext
    from botplatform.worker.sweeper import sweep_once

    shop = await mailer(api)
    ws = uuid.UUID(shop.ws)
    ids = await seed(runtime, ws, [Person("Ann", attributes={"email": "a@x.io"})])
    long_ago = utcnow() - timedelta(hours=1)
    async with runtime.db.unit_of_work(system=True) as db:
        broadcast = Broadcast(
            workspace_id=ws,
            channel_id=None,
            name="Crashed",
            status="completed",
            message=MESSAGE,
            audience={"type": "list", "contact_ids": [str(ids["Ann"])]},
            materialised=True,
        )
        outbox = Email(
            kind="broadcast",
            to_address="a@x.io",
            subject="S",
            text_body="t",
            status="sending",
            lease_until=None,
            attempts=1,
            created_at=long_ago,
            updated_at=long_ago,
        )
        db.add_all([broadcast, outbox])
        await db.flush()
        recipient = BroadcastRecipient(
            workspace_id=ws,
            broadcast_id=broadcast.id,
            channel_id=None,
            contact_id=ids["Ann"],
            address="a@x.io",
            status="sending",
            message_id=outbox.id,
            attempts=1,
            lease_until=long_ago,
        )
        db.add(recipient)
    async with runtime.db.unit_of_work(system=True) as db:  # the sweep job is a system job
        swept = await sweep_once(JobContext(runtime, db, "manual", 1, 1), after_seconds=300)
    assert swept["broadcast_emails"] == 1
    assert swept["emails"] == 0  # the transactional sender never picks a broadcast's email
    async with runtime.db.unit_of_work(system=True) as db:
        row = await db.get(BroadcastRecipient, recipient.id)
        email_row = await db.get(Email, outbox.id)
        assert row is not None and email_row is not None
        assert (row.status, row.error_code) == ("failed", "delivery_unknown")
        assert email_row.status == "unknown"
    await asyncio.sleep(0.5)
    assert smtp.messages == []


async def test_the_smtp_rate_is_kept(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, smtp: SmtpSink
) -> None:
    shop = await mailer(api)
    run = uuid.uuid4().hex[:8]  # the sink keeps each address's first RCPT for the session
    addresses = [f"r{i}-{run}@example.com" for i in range(4)]
    people = [Person(f"R{i}", attributes={"email": a}) for i, a in enumerate(addresses)]
    ids = await seed(runtime, uuid.UUID(shop.ws), people)
    original = runtime.settings
    runtime.settings = original.model_copy(update={"broadcast_email_rate": 2})
    try:
        created = await shop.create(list(ids.values()))
        await shop.start(created["id"])
        done = await shop.finished(created["id"])
    finally:
        runtime.settings = original
    assert done["counts"]["sent"] == 4
    times = sorted(smtp.rcpt_at[address] for address in addresses)
    # Two per second: the third email waits for the window to move on.
    assert times[2] - times[0] >= 0.9
    assert times[3] - times[1] >= 0.9
