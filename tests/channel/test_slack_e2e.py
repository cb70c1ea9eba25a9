"""Slack end to end, on both backends, against the Slack sandbox on loopback: connecting
with a bot token (auth.test), url_verification, signed events through the shared intake with
Slack's retries deduplicated, the contact's profile from users.info, agent and API replies
through chat.postMessage, a bot's buttons as Block Kit and their presses as button replies,
and a 429's Retry-After honoured."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from botplatform.channels.slack.adapter import sign
from botplatform.models import InboundEvent
from botplatform.runtime import Runtime
from botplatform.sandbox.slack import BOT_USER_ID, TEAM_ID, FakeSlack, shared_file
from tests.bot.flows import support_flow
from tests.bot.helpers import create_bot, publish
from tests.conftest import (
    PROVIDER_SAMPLES,
    SLACK_PORT,
    SLACK_SIGNING_SECRET,
    SLACK_TOKEN,
    Account,
    Api,
    eventually,
)
from tests.dashboard.helpers import browser_login

CUSTOMER = "U0CUSTOMER"


async def _setup(api: Api, slack: FakeSlack) -> tuple[Account, str, dict[str, Any]]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/channels",
        json={
            "provider": "slack",
            "bot_token": SLACK_TOKEN,
            "signing_secret": SLACK_SIGNING_SECRET,
        },
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    channel = dict(response.json()["data"])
    slack.webhook_url = f"http://testserver/webhooks/slack/{channel['id']}"
    return owner, ws, channel


async def _conversation(api: Api, owner: Account, ws: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        response = await api.http.get(
            f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers
        )
        items = response.json()["data"]["items"]
        return items[0] if items else None

    return dict(await eventually(find))


def _posts(slack: FakeSlack) -> list[dict[str, Any]]:
    return slack.sent("chat.postMessage")


async def test_connect_verify_url_and_refuse_forgeries(
    client: httpx.AsyncClient, api: Api, slack: FakeSlack
) -> None:
    owner, ws, channel = await _setup(api, slack)
    assert channel["provider"] == "slack" and channel["team_id"] == TEAM_ID
    assert channel["name"] == "Sandbox"  # the Slack workspace's name, from auth.test
    assert channel["webhook_url"].endswith(f"/webhooks/slack/{channel['id']}")
    assert slack.sent("auth.test")
    bad = await client.post(
        f"/api/v1/workspaces/{ws}/channels",
        json={"provider": "slack", "bot_token": "xoxb-wrong", "signing_secret": "s"},
        headers=owner.headers,
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_slack_token"
    again = await client.post(
        f"/api/v1/workspaces/{ws}/channels",
        json={"provider": "slack", "bot_token": SLACK_TOKEN, "signing_secret": "s"},
        headers=owner.headers,
    )
    assert again.status_code == 409
    url = f"/webhooks/slack/{channel['id']}"
    body = json.dumps({"token": "t", "challenge": "c-42", "type": "url_verification"}).encode()
    now = int(time.time())
    answered = await client.post(url, content=body, headers=sign(body, SLACK_SIGNING_SECRET, now))
    assert (answered.status_code, answered.text) == (200, "c-42")
    forged = await client.post(url, content=body, headers=sign(body, "not-the-secret", now))
    assert forged.status_code == 401
    replayed = await client.post(
        url, content=body, headers=sign(body, SLACK_SIGNING_SECRET, now - 301)
    )
    assert replayed.status_code == 401


async def test_dm_profile_replies_and_retries(
    client: httpx.AsyncClient, api: Api, slack: FakeSlack
) -> None:
    owner, ws, channel = await _setup(api, slack)
    event = slack.message_event(CUSTOMER, "hello & <welcome>")
    body = json.dumps(event).encode()
    url = f"/webhooks/slack/{channel['id']}"
    first = await client.post(
        url, content=body, headers=sign(body, SLACK_SIGNING_SECRET, int(time.time()))
    )
    assert first.status_code == 200 and first.json()["data"]["duplicate"] is False
    # Slack's retry: the same event_id (here in a re-serialized body), X-Slack-Retry-Num set.
    retry = json.dumps(event, indent=1).encode()
    headers = {**sign(retry, SLACK_SIGNING_SECRET, int(time.time())), "X-Slack-Retry-Num": "1"}
    again = await client.post(url, content=retry, headers=headers)
    assert again.status_code == 200 and again.json()["data"]["duplicate"] is True
    conversation = await _conversation(api, owner, ws)

    async def named() -> str | None:
        response = await client.get(
            f"/api/v1/workspaces/{ws}/contacts/{conversation['contact_id']}", headers=owner.headers
        )
        name = response.json()["data"]["name"]
        return name if name == "Ada Lovelace" else None

    assert await eventually(named) == "Ada Lovelace"  # from users.info, once
    reply = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"type": "text", "text": "a & b <!channel>"},
        headers=owner.headers,
    )
    assert reply.status_code in (200, 201, 202), reply.text
    post = await eventually(lambda: _posts(slack)[0] if _posts(slack) else None)
    assert post["channel"] == CUSTOMER
    assert post["text"] == "a &amp; b &lt;!channel&gt;"
    assert [c["token"] for c in slack.received if c["method"] == "chat.postMessage"] == [
        SLACK_TOKEN
    ]


async def test_bot_buttons_are_block_kit_and_presses_are_replies(
    client: httpx.AsyncClient, api: Api, slack: FakeSlack
) -> None:
    owner, ws, _channel = await _setup(api, slack)
    bot = await create_bot(api, owner, ws, support_flow())
    await publish(api, owner, ws, bot["id"])
    await slack.push(json.dumps(slack.message_event(CUSTOMER, "hi")).encode(), "application/json")
    post = await eventually(lambda: _posts(slack)[0] if _posts(slack) else None)
    actions = post["blocks"][1]
    assert actions["type"] == "actions"
    assert [(e["type"], e["value"], e["text"]["text"]) for e in actions["elements"]] == [
        ("button", "sales", "Sales"),
        ("button", "support", "Support"),
    ]
    key = next(iter(slack.messages))
    pressed = await slack.push(
        slack.press(CUSTOMER, key, "sales"), "application/x-www-form-urlencoded"
    )
    assert pressed.status_code == 200
    # The press moved the bot on: its next question went out.
    assert await eventually(lambda: len(_posts(slack)) >= 2 or None)
    # And the offer now shows the choice instead of its buttons (chat.update).
    update = await eventually(lambda: (slack.sent("chat.update") or [None])[0])
    assert (update["channel"], update["ts"]) == tuple(key.split(":"))
    assert [b["type"] for b in update["blocks"]] == ["section", "context"]
    assert slack.messages[key]["text"].endswith("✅ Sales")


async def test_channel_mentions_are_answered_and_other_bots_ignored(
    client: httpx.AsyncClient, api: Api, slack: FakeSlack
) -> None:
    owner, ws, _channel = await _setup(api, slack)
    own = slack.envelope(
        {"type": "message", "channel": "D1", "channel_type": "im", "user": BOT_USER_ID,
         "text": "me", "ts": "1700000000.000001"}
    )  # fmt: skip
    assert (await slack.push(json.dumps(own).encode(), "application/json")).status_code == 200
    mention = slack.message_event(CUSTOMER, "help", channel="C0GENERAL")
    await slack.push(json.dumps(mention).encode(), "application/json")
    conversation = await _conversation(api, owner, ws)
    response = await client.get(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        headers=owner.headers,
    )
    texts = [m["text"] for m in response.json()["data"]["items"]]
    assert texts == [f"<@{BOT_USER_ID}> help"]  # the app's own message was left out
    # A thread is a conversation: the answer goes into the mention's thread, in its channel,
    # and the customer's reply in that thread is the same conversation, answered there again.
    root = mention["event"]["ts"]
    for text in ("first answer", "second answer"):
        sent = await client.post(
            f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
            json={"type": "text", "text": text},
            headers=owner.headers,
        )
        assert sent.status_code in (200, 201, 202), sent.text
        post = await eventually(
            lambda text=text: next((p for p in _posts(slack) if p["text"] == text), None)
        )
        assert (post["channel"], post["thread_ts"]) == ("C0GENERAL", root)
        reply = slack.message_event(CUSTOMER, "thanks", channel="C0GENERAL", thread_ts=root)
        await slack.push(json.dumps(reply).encode(), "application/json")
    assert (await _conversation(api, owner, ws))["id"] == conversation["id"]


async def test_retry_after_is_honoured(
    client: httpx.AsyncClient, api: Api, slack: FakeSlack
) -> None:
    owner, ws, _channel = await _setup(api, slack)
    await slack.push(json.dumps(slack.message_event(CUSTOMER, "x")).encode(), "application/json")
    conversation = await _conversation(api, owner, ws)
    await eventually(lambda: slack.sent("users.info") or None)  # so the 429 meets the send
    slack.fail_next(429, "ratelimited", 1)
    started = time.monotonic()
    await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"type": "text", "text": "after the wait"},
        headers=owner.headers,
    )
    post = await eventually(lambda: _posts(slack)[-1] if len(_posts(slack)) >= 2 else None)
    assert post["text"] == "after the wait"
    assert time.monotonic() - started >= 1.0


async def test_shared_samples_through_the_webhook(
    client: httpx.AsyncClient, api: Api, slack: FakeSlack, runtime: Runtime
) -> None:
    """Every real Slack payload of the shared samples, signed, through the real endpoint."""
    _owner, _ws, channel = await _setup(api, slack)
    url = f"/webhooks/slack/{channel['id']}"
    for sample in sorted((PROVIDER_SAMPLES / "slack").glob("*.json")):
        body = sample.read_bytes()
        headers = sign(body, SLACK_SIGNING_SECRET, int(time.time()))
        response = await client.post(url, content=body, headers=headers)
        assert response.status_code == 200, sample.name
        if json.loads(body)["type"] == "url_verification":
            assert response.text == json.loads(body)["challenge"]

    async def processed() -> list[str] | None:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            events = (await db.execute(select(InboundEvent))).scalars().all()
            statuses = [event.status for event in events]
            return statuses if statuses and "pending" not in statuses else None

    assert await eventually(processed) == ["processed"]  # url_verification stored nothing


async def test_add_to_slack_installs_through_oauth(
    client: httpx.AsyncClient,
    api: Api,
    slack: FakeSlack,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    link = f"/api/v1/workspaces/{ws}/channels/slack/install"
    refused = await client.get(link, headers=owner.headers)
    assert refused.status_code == 501
    assert refused.json()["error"]["code"] == "slack_oauth_not_configured"
    base = f"http://127.0.0.1:{SLACK_PORT}"
    for name, value in {
        "slack_client_id": slack.client_id,
        "slack_client_secret": slack.client_secret,
        "slack_signing_secret": SLACK_SIGNING_SECRET,
        "slack_authorize_url": f"{base}/oauth/v2/authorize",
    }.items():
        monkeypatch.setattr(runtime.settings, name, value)
    url = (await client.get(link, headers=owner.headers)).json()["data"]["url"]
    assert url.startswith(f"{base}/oauth/v2/authorize?") and "chat%3Awrite" in url
    async with httpx.AsyncClient() as browser:  # Slack's page sends the browser back
        back = await browser.get(url)
    assert back.status_code in (302, 307)
    callback = httpx.URL(back.headers["location"])
    assert callback.path == "/oauth/slack/callback"
    done = await client.get(f"{callback.path}?{callback.query.decode()}")
    assert done.status_code == 303 and done.headers["location"] == f"/app/w/{ws}/channels"
    assert slack.sent("oauth.v2.access")[0]["code"]
    again = await client.get(f"{callback.path}?{callback.query.decode()}")
    assert again.status_code == 422  # a code works once
    channels = await client.get(f"/api/v1/workspaces/{ws}/channels", headers=owner.headers)
    [channel] = channels.json()["data"]["items"]
    assert (channel["provider"], channel["team_id"]) == ("slack", TEAM_ID)
    # Installed through the platform's app: its signing secret verifies the channel's events.
    slack.webhook_url = f"http://testserver/webhooks/slack/{channel['id']}"
    pushed = await slack.push(
        json.dumps(slack.message_event(CUSTOMER, "hi")).encode(), "application/json"
    )
    assert pushed.status_code == 200
    forged = await client.get("/oauth/slack/callback?state=forged&code=x")
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_state"


async def test_files_both_ways_and_reactions(
    client: httpx.AsyncClient, api: Api, slack: FakeSlack
) -> None:
    from tests.media.test_storage import _png

    owner, ws, channel = await _setup(api, slack)
    image = _png()
    file_id = await api.upload_media(owner, ws, channel["id"], image, "photo.png", "image/png")
    assert slack.uploads[file_id]["data"] == image  # getUploadURLExternal, then the bytes
    # A customer shares a file in the DM: downloaded with the bot token into storage.
    shared = {"name": "notes.txt", "mimetype": "text/plain", "content": "the notes"}
    event = slack.message_event(CUSTOMER, "see attached")
    event["event"].update(subtype="file_share", files=[shared_file(slack, shared)])
    await slack.push(json.dumps(event).encode(), "application/json")
    conversation = await _conversation(api, owner, ws)

    async def stored() -> dict[str, Any] | None:
        response = await client.get(
            f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
            headers=owner.headers,
        )
        items = response.json()["data"]["items"]
        found = next((m for m in items if m["type"] == "document"), None)
        return found if found and found["media_status"] == "stored" else None

    document = await eventually(stored)
    assert document["text"] == "see attached"
    reply = f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages"
    sent = await client.post(
        reply,
        json={"type": "image", "media": {"id": file_id, "caption": "here"}},
        headers=owner.headers,
    )
    assert sent.status_code == 201, sent.text
    share = await eventually(lambda: slack.shared_files[0] if slack.shared_files else None)
    assert share["files"][0]["id"] == file_id
    assert share["channel_id"] == "D0CUSTOMER"  # the DM, opened with conversations.open
    assert share["initial_comment"] == "here"
    # A reaction to the customer's message, by its Slack name.
    target = f"D0CUSTOMER:{event['event']['ts']}"
    react = await client.post(
        reply,
        json={"type": "reaction", "reaction_to": target, "emoji": "👍"},
        headers=owner.headers,
    )
    assert react.status_code == 201, react.text
    added = await eventually(lambda: slack.reactions[0] if slack.reactions else None)
    assert (added["name"], added["channel"]) == ("+1", "D0CUSTOMER")
    assert added["timestamp"] == event["event"]["ts"]


async def test_api_sends_and_merging_with_other_identities(
    client: httpx.AsyncClient, api: Api, slack: FakeSlack
) -> None:
    owner, ws, channel = await _setup(api, slack)
    sent = await client.post(
        f"/api/v1/workspaces/{ws}/messages",
        json={"channel_id": channel["id"], "to": CUSTOMER, "type": "text", "text": "order ready"},
        headers=owner.headers,
    )
    assert sent.status_code == 201, sent.text
    post = await eventually(lambda: _posts(slack)[0] if _posts(slack) else None)
    assert (post["channel"], post["text"]) == (CUSTOMER, "order ready")
    whatsapp = await api.create_channel(owner, ws)
    await api.inbound_text(whatsapp["id"], "15557654321", "hi from WhatsApp", name="Ada L")

    async def two() -> list[dict[str, Any]] | None:
        response = await client.get(f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers)
        items = response.json()["data"]["items"]
        return items if len(items) == 2 else None

    first, second = await eventually(two)
    merged = await client.post(
        f"/api/v1/workspaces/{ws}/contacts/{first['contact_id']}/merge",
        json={"contact_id": second["contact_id"]},
        headers=owner.headers,
    )
    assert merged.status_code == 200, merged.text
    identities = {i["provider"]: i["external_id"] for i in merged.json()["data"]["identities"]}
    assert identities == {"slack": CUSTOMER, "whatsapp": "15557654321"}


async def _conversations(api: Api, owner: Account, ws: str, count: int) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        response = await api.http.get(
            f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers
        )
        items = response.json()["data"]["items"]
        return items if len(items) == count else None

    return list(await eventually(found))


async def test_each_thread_is_a_conversation_answered_in_its_thread(
    client: httpx.AsyncClient, api: Api, slack: FakeSlack
) -> None:
    """One person: their DM, a channel thread and a thread inside the DM are three
    conversations; the channel's auto-reply (the batch path) and an agent's reply each go
    back where the customer wrote, and a later message in a thread finds its conversation."""
    owner, ws, channel = await _setup(api, slack)
    patched = await client.patch(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}",
        json={"auto_reply": "On it."},
        headers=owner.headers,
    )
    assert patched.status_code == 200, patched.text
    dm = slack.message_event(CUSTOMER, "hello")
    mention = slack.message_event(CUSTOMER, "help", channel="C0GENERAL")
    dm_ts, root = dm["event"]["ts"], mention["event"]["ts"]
    dm_thread = slack.message_event(CUSTOMER, "about that", thread_ts=dm_ts)
    for event in (dm, mention, dm_thread):
        await slack.push(json.dumps(event).encode(), "application/json")
    conversations = await _conversations(api, owner, ws, 3)
    by_thread = {c["thread"]: c for c in conversations}
    assert set(by_thread) == {None, f"C0GENERAL:{root}", f"D0CUSTOMER:{dm_ts}"}
    assert len({c["contact_id"] for c in conversations}) == 1  # one person, three threads

    def auto_replies() -> list[tuple[str, str | None]] | None:
        posts = [p for p in _posts(slack) if p["text"] == "On it."]
        return [(p["channel"], p.get("thread_ts")) for p in posts] if len(posts) == 3 else None

    assert sorted(await eventually(auto_replies), key=str) == sorted(
        [(CUSTOMER, None), ("C0GENERAL", root), ("D0CUSTOMER", dm_ts)], key=str
    )
    for thread, where in ((None, (CUSTOMER, None)), (f"C0GENERAL:{root}", ("C0GENERAL", root))):
        text = f"agent on {thread}"
        sent = await client.post(
            f"/api/v1/workspaces/{ws}/conversations/{by_thread[thread]['id']}/messages",
            json={"type": "text", "text": text},
            headers=owner.headers,
        )
        assert sent.status_code == 201, sent.text
        post = await eventually(
            lambda text=text: next((p for p in _posts(slack) if p["text"] == text), None)
        )
        assert (post["channel"], post.get("thread_ts")) == where
    later = slack.message_event(CUSTOMER, "still there?", channel="C0GENERAL", thread_ts=root)
    await slack.push(json.dumps(later).encode(), "application/json")

    async def unread() -> int | None:
        response = await client.get(
            f"/api/v1/workspaces/{ws}/conversations/{by_thread[f'C0GENERAL:{root}']['id']}",
            headers=owner.headers,
        )
        count = int(response.json()["data"]["unread_count"])
        return count if count == 2 else None

    assert await eventually(unread) == 2
    # A reaction names the message, not its thread: it joins that message's conversation.
    reaction = slack.envelope(
        {"type": "reaction_added", "user": CUSTOMER, "reaction": "+1", "event_ts": "1800000000.1",
         "item": {"type": "message", "channel": "C0GENERAL", "ts": later["event"]["ts"]}}
    )  # fmt: skip
    await slack.push(json.dumps(reaction).encode(), "application/json")

    async def reacted() -> list[str] | None:
        response = await client.get(
            f"/api/v1/workspaces/{ws}/conversations/{by_thread[f'C0GENERAL:{root}']['id']}"
            "/messages",
            headers=owner.headers,
        )
        kinds = [m["type"] for m in response.json()["data"]["items"]]
        return kinds if "reaction" in kinds else None

    assert await eventually(reacted)
    assert len(await _conversations(api, owner, ws, 3)) == 3
    await browser_login(client, owner.email, owner.password)
    inbox = await client.get(f"/app/w/{ws}/inbox")
    assert inbox.text.count(" · thread") == 2  # the DM is not marked


async def test_an_agent_edit_updates_the_slack_message_and_slack_shows_no_typing(
    client: httpx.AsyncClient, api: Api, slack: FakeSlack
) -> None:
    owner, ws, _channel = await _setup(api, slack)
    await slack.push(json.dumps(slack.message_event(CUSTOMER, "hi")).encode(), "application/json")
    conversation = await _conversation(api, owner, ws)
    base = f"/api/v1/workspaces/{ws}"
    sent = await client.post(
        f"{base}/conversations/{conversation['id']}/messages",
        json={"type": "text", "text": "see you at 10"},
        headers=owner.headers,
    )
    message_id = sent.json()["data"]["id"]

    async def provider_id() -> str | None:
        response = await client.get(
            f"{base}/conversations/{conversation['id']}/messages", headers=owner.headers
        )
        row = next(m for m in response.json()["data"]["items"] if m["id"] == message_id)
        return row["provider_message_id"] if row["status"] == "sent" else None

    key = await eventually(provider_id)
    edited = await client.patch(
        f"{base}/messages/{message_id}", json={"text": "at 11 & <!here>"}, headers=owner.headers
    )
    assert edited.status_code == 200, edited.text
    update = await eventually(lambda: (slack.sent("chat.update") or [None])[0])
    assert (update["channel"], update["ts"]) == tuple(key.split(":"))
    assert update["text"] == "at 11 &amp; &lt;!here&gt;"
    assert slack.messages[key]["text"] == "at 11 &amp; &lt;!here&gt;"
    typing = await client.post(
        f"{base}/conversations/{conversation['id']}/typing", headers=owner.headers
    )
    assert (typing.status_code, typing.json()["data"]) == (202, {"typing": False})
