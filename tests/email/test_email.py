"""Email is a row first, then a job: invitations arrive by SMTP, a lost job is swept up, and
a duplicated job sends once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from botplatform.email.service import queue_email
from botplatform.kit.clock import utcnow
from botplatform.models import Email
from botplatform.runtime import Runtime
from botplatform.worker.jobs import JobContext
from botplatform.worker.sweeper import sweep_once
from tests.conftest import Api, SmtpSink, eventually


async def _status(runtime: Runtime, email_id: uuid.UUID) -> str:
    async with runtime.db.unit_of_work() as db:
        email = await db.get(Email, email_id)
        assert email is not None
        return email.status


async def _is_sent(runtime: Runtime, email_id: uuid.UUID) -> bool:
    return await _status(runtime, email_id) == "sent"


async def test_invitation_link_arrives_by_email(
    client: httpx.AsyncClient, api: Api, smtp: SmtpSink
) -> None:
    owner = await api.register(name="Olga <Owner>")
    ws = await api.create_workspace(owner, "Tea & Co")
    created = await api.invite(owner, ws, "guest@example.com", "agent")

    (message,) = await eventually(lambda: smtp.to("guest@example.com"))
    assert message["Subject"] == "You're invited to Tea & Co"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert created["link"] in text
    assert "Olga &lt;Owner&gt;" in html and "Tea &amp; Co" in html  # escaped in HTML
    assert message["Message-ID"].endswith("@localhost>")

    guest = await api.register("guest@example.com")
    token = text.split("token=", 1)[1].split()[0]
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=guest.headers
    )
    assert accepted.status_code == 200


async def test_nothing_is_sent_when_the_request_fails(
    client: httpx.AsyncClient, api: Api, smtp: SmtpSink, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    refused = await client.post(  # the role check fails after nothing was written
        f"/api/v1/workspaces/{ws}/invitations",
        json={"email": "nobody@example.com", "role": "not-a-role"},
        headers=owner.headers,
    )
    assert refused.status_code == 422
    async with runtime.db.unit_of_work() as db:
        assert (await db.execute(select(Email))).scalars().all() == []


async def test_sweeper_sends_an_email_whose_job_was_lost(
    client: httpx.AsyncClient, runtime: Runtime, smtp: SmtpSink
) -> None:
    # The row committed but its job never reached the queue (say Redis was restarting).
    async with runtime.db.unit_of_work() as db:
        email = Email(kind="test", to_address="lost@example.com", subject="Lost", text_body="hi")
        db.add(email)
    async with runtime.db.unit_of_work() as db:
        await db.execute(update(Email).values(updated_at=utcnow() - timedelta(minutes=10)))
    async with runtime.db.unit_of_work() as db:
        context = JobContext(runtime, db, "manual", 1, 1)
        swept = await sweep_once(context, after_seconds=300)
    assert swept["emails"] == 1
    await eventually(lambda: smtp.to("lost@example.com"))
    # The message reaches the server a moment before its row is marked sent.
    assert await eventually(lambda: _is_sent(runtime, email.id))
    # Touched when swept: a second sweep right away leaves it alone.
    async with runtime.db.unit_of_work() as db:
        assert (await sweep_once(JobContext(runtime, db, "m", 1, 1), 300))["emails"] == 0


async def test_a_duplicated_job_sends_once(
    client: httpx.AsyncClient, runtime: Runtime, smtp: SmtpSink
) -> None:
    async with runtime.db.unit_of_work() as db:
        email = await queue_email(
            db, kind="test", to="once@example.com", subject="Once", text="only once"
        )
    for _ in range(3):  # at-least-once delivery: the same job arrives again
        runtime.jobs.send("send_email", str(email.id))
    await eventually(lambda: smtp.to("once@example.com"))
    await eventually(lambda: runtime.jobs.depths()["default"]["waiting"] == 0)
    assert await eventually(lambda: _is_sent(runtime, email.id))
    import asyncio

    await asyncio.sleep(0.5)
    assert len(smtp.to("once@example.com")) == 1


async def test_smtp_failure_is_recorded_and_retried(
    client: httpx.AsyncClient, runtime: Runtime, smtp: SmtpSink
) -> None:
    broken = runtime.settings.model_copy(update={"smtp_port": 9})
    original = runtime.settings
    runtime.settings = broken
    try:
        async with runtime.db.unit_of_work() as db:
            email = await queue_email(
                db, kind="test", to="retry@example.com", subject="R", text="r"
            )

        async def failed_once() -> bool:
            async with runtime.db.unit_of_work() as db:
                row = await db.get(Email, email.id)
                return bool(row and row.last_error)

        await eventually(failed_once)
    finally:
        runtime.settings = original
    # The SMTP server is reachable again: the job's next retry delivers it.
    async with runtime.db.unit_of_work() as db:
        await db.execute(update(Email).values(updated_at=utcnow() - timedelta(minutes=10)))
        await sweep_once(JobContext(runtime, db, "m", 1, 1), 300)
    await eventually(lambda: smtp.to("retry@example.com"))
    await eventually(lambda: _is_sent(runtime, email.id))
    async with runtime.db.unit_of_work() as db:
        row = await db.get(Email, email.id)
        assert row is not None and row.status == "sent" and row.attempts >= 2
