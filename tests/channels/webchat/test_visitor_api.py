"""The visitor API on both backends: a visitor's message takes the common inbound path into
the inbox, an agent's reply comes back to the visitor, and the site's rules hold (origins,
tokens, identity verification, deduplication, limits)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from botplatform.channels.webchat.site import user_hash
from botplatform.channels.webchat.tasks import email_unseen_replies
from botplatform.kit.clock import utcnow
from botplatform.models import Message
from botplatform.runtime import Runtime
from botplatform.worker.jobs import JobContext
from tests.channels.webchat.helpers import SITE, VisitorClient, webchat_channel
from tests.conftest import Account, Api, SmtpSink, eventually


async def _setup(api: Api) -> tuple[Account, str, dict[str, Any]]:
    owner = await api.register(name="Olivia Owner")
    ws = await api.create_workspace(owner, "Acme Shop")
    channel = await webchat_channel(api, owner, ws, welcome_message="Hi! Ask us anything.")
    return owner, ws, channel


async def _conversation(api: Api, owner: Account, ws: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        response = await api.http.get(
            f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers
        )
        items = response.json()["data"]["items"]
        return items[0] if items else None

    return dict(await eventually(find))


async def test_a_visitor_chats_with_an_agent_both_ways(api: Api, client: httpx.AsyncClient) -> None:
    owner, ws, channel = await _setup(api)
    assert channel["webchat"]["snippet"] == (
        f'<script src="{channel["webchat"]["script_url"]}" async></script>'
    )
    visitor = VisitorClient(client, channel["id"])
    started = await visitor.start()
    assert started.status_code == 200, started.text
    assert started.headers["access-control-allow-origin"] == SITE
    widget = started.json()["data"]["widget"]
    assert widget["welcome_message"] == "Hi! Ask us anything."
    assert widget["name"] == "Acme Shop"

    client_id = uuid.uuid4().hex
    said = await visitor.say("<img src=x onerror=alert(1)> hello", client_id)
    assert said.status_code == 200, said.text
    again = await visitor.say("<img src=x onerror=alert(1)> hello", client_id)
    assert again.json()["data"]["duplicate"] is True

    conversation = await _conversation(api, owner, ws)
    messages = await client.get(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        headers=owner.headers,
    )
    texts = [m["text"] for m in messages.json()["data"]["items"]]
    assert texts == ["<img src=x onerror=alert(1)> hello"]

    reply = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "Hello! How can we help?"},
        headers=owner.headers,
    )
    assert reply.status_code in (200, 201, 202), reply.text

    async def replied() -> list[dict[str, Any]] | None:
        found = await visitor.history()
        out = [m for m in found if m["direction"] == "outbound" and m["status"] == "sent"]
        return found if out else None

    history = await eventually(replied)
    assert [m["text"] for m in history] == [
        "<img src=x onerror=alert(1)> hello",
        "Hello! How can we help?",
    ]
    # The visitor reads the reply: the agent sees it read.
    pid = history[1]["pid"]
    read = await client.post(
        f"/widget/{channel['id']}/read", json={"ids": [pid]}, headers=visitor.headers
    )
    assert read.json()["data"] == {"read": 1}

    async def seen() -> bool:
        response = await client.get(
            f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
            headers=owner.headers,
        )
        return any(m["status"] == "read" for m in response.json()["data"]["items"])

    assert await eventually(seen)


async def test_another_origin_or_a_missing_token_is_refused(
    api: Api, client: httpx.AsyncClient
) -> None:
    _, _, channel = await _setup(api)
    stranger = VisitorClient(client, channel["id"], origin="https://evil.example.net")
    refused = await stranger.start()
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "origin_not_allowed"
    no_origin = await client.post(f"/widget/{channel['id']}/session", json={})
    assert no_origin.status_code == 403

    visitor = VisitorClient(client, channel["id"])
    untokened = await visitor.say("hello")
    assert untokened.status_code == 401
    await visitor.start()
    # A token of this channel is worthless from another site.
    stolen = VisitorClient(client, channel["id"], origin="https://evil.example.net")
    stolen.token = visitor.token
    assert (await stolen.say("hi")).status_code == 403
    forged = VisitorClient(client, channel["id"])
    forged.token = (visitor.token or "")[:-4] + "AAAA"
    assert (await forged.say("hi")).status_code == 401


async def test_visitors_see_only_their_own_conversation(
    api: Api, client: httpx.AsyncClient
) -> None:
    _, _, channel = await _setup(api)
    alice, bob = VisitorClient(client, channel["id"]), VisitorClient(client, channel["id"])
    await alice.start()
    await bob.start()
    await alice.say("alice's secret")
    await eventually(alice.history)
    assert await bob.history() == []
    # A returning visitor keeps the conversation: the renewed token names the same visitor.
    visitor_id = (await alice.start()).json()["data"]["visitor_id"]
    assert visitor_id.startswith("v:")
    assert (await alice.start()).json()["data"]["visitor_id"] == visitor_id
    assert [m["text"] for m in await alice.history()] == ["alice's secret"]


async def test_identity_verification_refuses_a_wrong_hash(
    api: Api, client: httpx.AsyncClient
) -> None:
    owner, ws, _ = await _setup(api)
    channel = await webchat_channel(
        api, owner, ws, name="Logged in", identity_secret="s3cret-value"
    )
    visitor = VisitorClient(client, channel["id"])
    wrong = await visitor.start(user_id="user-42", user_hash="0" * 64)
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "identity_rejected"
    good = await visitor.start(user_id="user-42", user_hash=user_hash("s3cret-value", "user-42"))
    assert good.status_code == 200
    assert good.json()["data"]["visitor_id"] == "u:user-42"
    # Another browser of the same user continues the same conversation.
    await visitor.say("from the laptop")
    phone = VisitorClient(client, channel["id"])
    await phone.start(user_id="user-42", user_hash=user_hash("s3cret-value", "user-42"))
    assert [m["text"] for m in await eventually(phone.history)] == ["from the laptop"]


async def test_bad_input_gets_a_clear_4xx(api: Api, client: httpx.AsyncClient) -> None:
    _, _, channel = await _setup(api)
    visitor = VisitorClient(client, channel["id"])
    await visitor.start()
    base = f"/widget/{channel['id']}/messages"
    too_long = await client.post(
        base, json={"client_id": uuid.uuid4().hex, "text": "x" * 5000}, headers=visitor.headers
    )
    assert too_long.status_code == 422
    no_id = await client.post(base, json={"text": "hi"}, headers=visitor.headers)
    assert no_id.status_code == 422
    empty = await client.post(base, json={"client_id": uuid.uuid4().hex}, headers=visitor.headers)
    assert empty.status_code == 400
    unknown = await client.post(f"/widget/{uuid.uuid4()}/session", json={}, headers=visitor.headers)
    assert unknown.status_code == 404
    preflight = await client.options(
        base, headers={"Origin": SITE, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert "authorization" in preflight.headers["access-control-allow-headers"]


async def test_a_reply_left_unread_reaches_the_visitor_by_email_once(
    api: Api, client: httpx.AsyncClient, runtime: Runtime, smtp: SmtpSink
) -> None:
    owner, ws, channel = await _setup(api)
    visitor = VisitorClient(client, channel["id"])
    await visitor.start()
    profile = await client.post(
        f"/widget/{channel['id']}/profile",
        json={"name": "Ann Away", "email": "ann.away@example.com"},
        headers=visitor.headers,
    )
    assert profile.status_code == 200, profile.text
    await visitor.say("Can you call me back?")
    conversation = await _conversation(api, owner, ws)
    await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "Sure, <b>tomorrow</b> at 10."},
        headers=owner.headers,
    )

    async def sent() -> bool:
        return any(m["status"] == "sent" for m in await visitor.history())

    assert await eventually(sent)
    async with runtime.db.unit_of_work(system=True) as db:  # nobody read it just now: no email
        await email_unseen_replies(JobContext(runtime, db, "t", 1, 1))
    assert smtp.to("ann.away@example.com") == []
    async with runtime.db.unit_of_work(system=True) as db:  # ... unread for 5 minutes
        await db.execute(
            update(Message)
            .where(Message.direction == "outbound")
            .values(created_at=utcnow() - timedelta(minutes=5))
        )
        await email_unseen_replies(JobContext(runtime, db, "t", 1, 1))
    (mail,) = await eventually(lambda: smtp.to("ann.away@example.com"))
    assert "Acme Shop replied to your chat" in mail["Subject"]
    html = next(p for p in mail.walk() if p.get_content_type() == "text/html").get_content()
    assert "&lt;b&gt;tomorrow&lt;/b&gt;" in html
    async with runtime.db.unit_of_work(system=True) as db:  # once only
        await email_unseen_replies(JobContext(runtime, db, "t", 1, 1))
    assert len(smtp.to("ann.away@example.com")) == 1


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


async def test_uploads_are_checked_by_content_and_size(
    api: Api, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, _, channel = await _setup(api)
    visitor = VisitorClient(client, channel["id"])
    await visitor.start()
    url = f"/widget/{channel['id']}/uploads"

    def form(client_id: str) -> dict[str, str]:
        return {"client_id": client_id, "caption": "my receipt"}

    fake = await client.post(
        url,
        files={"file": ("x.png", b"MZ\x90\x00 not an image", "image/png")},
        data=form(uuid.uuid4().hex),
        headers=visitor.headers,
    )
    assert fake.status_code == 400 and fake.json()["error"]["code"] == "file_rejected"
    limit = runtime.settings.webchat_max_upload_bytes
    huge = await client.post(
        url,
        files={"file": ("big.txt", b"a" * (limit + 1), "text/plain")},
        data=form(uuid.uuid4().hex),
        headers=visitor.headers,
    )
    assert huge.status_code == 413
    good = await client.post(
        url,
        files={"file": ("dot.png", PNG, "image/png")},
        data=form(uuid.uuid4().hex),
        headers=visitor.headers,
    )
    assert good.status_code == 200, good.text

    async def stored() -> list[dict[str, Any]] | None:
        found = await visitor.history()
        return found if found and found[0]["media"] else None

    [image] = await eventually(stored)
    assert image["type"] == "image" and image["text"] == "my receipt"
    assert image["media"]["mime"] == "image/png"
    picture = await client.get(image["media"]["url"].removeprefix(runtime.settings.app_url))
    assert picture.status_code == 200 and picture.content == PNG


async def test_a_visitor_over_the_rate_limit_gets_429(
    api: Api, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, _, channel = await _setup(api)
    visitor = VisitorClient(client, channel["id"])
    await visitor.start()
    limit = runtime.ratelimiter.tiers["webchat_visitor"].amount
    # A few more than the limit: a sliding window that turns a minute meanwhile lets a
    # hit or two more through.
    answers = [(await visitor.say(f"spam {n}")).status_code for n in range(limit + 5)]
    assert answers[:limit] == [200] * limit, (limit, answers)
    assert answers[-1] == 429, (limit, answers)
    other = VisitorClient(client, channel["id"])
    await other.start()
    assert (await other.say("I am someone else")).status_code == 200
