"""Messenger and Instagram end to end, on both backends, against the Meta sandbox on
loopback: channel CRUD, the handshake, signed customer messages through the shared intake,
replies through the Send API (text, buttons as a button template, quick replies on
Instagram), echoes not recorded twice, delivery/read watermarks, the 24-hour window and
message tags, and classified send errors."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from botplatform.kit.clock import utcnow
from botplatform.models import ContactIdentity, Conversation
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph, meta
from tests.bot.flows import support_flow
from tests.bot.helpers import create_bot, publish
from tests.conftest import APP_SECRET, CHANNEL_TOKEN, Account, Api, eventually

PAGE_ID = "1029384756"


async def _channel(
    api: Api, owner: Account, ws: str, provider: str, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": provider,
        "name": f"{provider} page",
        "page_id": PAGE_ID,
        "access_token": CHANNEL_TOKEN,
        "app_secret": APP_SECRET,
        **extra,
    }
    if provider == "instagram":
        body["instagram_account_id"] = PAGE_ID
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/channels", json=body, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


async def _setup(
    api: Api, wa: FakeGraph, provider: str = "messenger"
) -> tuple[Account, str, dict[str, Any]]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await _channel(api, owner, ws, provider)
    wa.connect_page(PAGE_ID, f"http://testserver/webhooks/{provider}/{channel['id']}", provider)
    return owner, ws, channel


async def _conversation(api: Api, owner: Account, ws: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        response = await api.http.get(
            f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers
        )
        items = response.json()["data"]["items"]
        return items[0] if items else None

    return dict(await eventually(find))


async def _messages(
    api: Api, owner: Account, ws: str, conversation_id: str
) -> list[dict[str, Any]]:
    response = await api.http.get(
        f"/api/v1/workspaces/{ws}/conversations/{conversation_id}/messages", headers=owner.headers
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["items"])


async def _first_message(
    api: Api, wa: FakeGraph
) -> tuple[Account, str, meta.Page, str, dict[str, Any]]:
    """A Messenger channel, and a customer's first message on it."""
    owner, ws, _created = await _setup(api, wa)
    page = wa.pages[PAGE_ID]
    psid, _mid = await wa.post_page_inbound(page, "hello", name="Ada Lovelace")
    return owner, ws, page, psid, await _conversation(api, owner, ws)


async def _reply(
    api: Api, owner: Account, ws: str, conversation_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await api.http.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation_id}/messages",
        json=body,
        headers=owner.headers,
    )


async def test_channel_crud_and_handshake(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    created = await _channel(api, owner, ws, "messenger")
    assert created["provider"] == "messenger" and created["page_id"] == PAGE_ID
    assert created["webhook_url"].endswith(f"/webhooks/messenger/{created['id']}")
    assert created["access_token_hint"] != CHANNEL_TOKEN and created["verify_token"]
    again = await client.post(
        f"/api/v1/workspaces/{ws}/channels",
        json={"provider": "messenger", "name": "x", "page_id": PAGE_ID, "access_token": "t"},
        headers=owner.headers,
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "channel_exists"
    insta = await _channel(api, owner, ws, "instagram")
    assert insta["instagram_account_id"] == PAGE_ID
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": insta["verify_token"],
        "hub.challenge": "42",
    }
    shake = await client.get(f"/webhooks/instagram/{insta['id']}", params=params)
    assert (shake.status_code, shake.text) == (200, "42")
    wrong = await client.get(f"/webhooks/messenger/{insta['id']}", params=params)
    assert wrong.status_code == 404  # the URL names the provider too
    later = await client.post(
        f"/api/v1/workspaces/{ws}/channels",
        json={"provider": "webchat", "name": "t"},
        headers=owner.headers,
    )
    # Every provider of SPEC §3 is built now: a widget without its sites is refused plainly.
    assert later.status_code == 422 and later.json()["error"]["code"] == "validation_error"
    patched = await client.patch(
        f"/api/v1/workspaces/{ws}/channels/{created['id']}",
        json={"name": "Renamed", "page_id": "5556667778"},
        headers=owner.headers,
    )
    assert patched.status_code == 200 and patched.json()["data"]["page_id"] == "5556667778"
    deleted = await client.delete(
        f"/api/v1/workspaces/{ws}/channels/{created['id']}", headers=owner.headers
    )
    assert deleted.status_code == 200


async def test_inbound_reply_echo_and_watermarks(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, _channel_out = await _setup(api, wa)
    page = wa.pages[PAGE_ID]
    psid, mid = await wa.post_page_inbound(page, "hello there", name="Ada Lovelace")
    assert wa.last_delivery.endswith("answered 200"), wa.last_delivery
    conversation = await _conversation(api, owner, ws)
    [inbound] = await _messages(api, owner, ws, conversation["id"])
    assert (inbound["direction"], inbound["text"]) == ("inbound", "hello there")
    # The same webhook again (Meta retries): one message.
    await wa.deliver_page(page, wa.webhooks[-1]["entry"][0]["messaging"][0])
    sent = await _reply(api, owner, ws, conversation["id"], {"text": "Hi Ada"})
    assert sent.status_code == 201, sent.text
    call = await eventually(lambda: wa.page_sent[0] if wa.page_sent else None)
    assert call["body"] == {
        "recipient": {"id": psid},
        "messaging_type": "RESPONSE",
        "message": {"text": "Hi Ada", "metadata": sent.json()["data"]["id"]},
    }

    async def read() -> list[dict[str, Any]] | None:
        items = await _messages(api, owner, ws, conversation["id"])
        outbound = [m for m in items if m["direction"] == "outbound"]
        return items if outbound and outbound[0]["status"] == "read" else None

    items = await eventually(read)
    assert len(items) == 2, items  # the echo of our own send is not a second message
    # A message the Page sent from Meta's inbox comes back as an echo: recorded, outbound.
    await wa.deliver_page(
        page,
        {
            "sender": {"id": PAGE_ID},
            "recipient": {"id": psid},
            "timestamp": 1700000000000,
            "message": {
                "is_echo": True,
                "app_id": 263902037430900,
                "mid": "m_inbox",
                "text": "From the inbox",
            },
        },
    )

    async def echoed() -> dict[str, Any] | None:
        items = await _messages(api, owner, ws, conversation["id"])
        return next((m for m in items if m["text"] == "From the inbox"), None)

    # Recorded as sent: a later read watermark would (rightly) mark it read too.
    echo = await eventually(echoed)
    assert (echo["direction"], echo["status"]) == ("outbound", "sent")
    # An API send names the contact by its Page-scoped id.
    by_id = await client.post(
        f"/api/v1/workspaces/{ws}/messages",
        json={"channel_id": _channel_out["id"], "to": psid, "text": "By id"},
        headers=owner.headers,
    )
    assert by_id.status_code == 201, by_id.text
    assert by_id.json()["data"]["conversation_id"] == conversation["id"]
    assert len(await _messages(api, owner, ws, conversation["id"])) == 4  # + "By id"
    assert inbound["provider_message_id"] == mid if "provider_message_id" in inbound else True


async def test_bot_buttons_become_a_button_template(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, _created = await _setup(api, wa)
    bot = await create_bot(api, owner, ws, support_flow())
    await publish(api, owner, ws, bot["id"])
    await wa.post_page_inbound(wa.pages[PAGE_ID], "hi", name="Dana Scully")
    call = await eventually(lambda: wa.page_sent[0] if wa.page_sent else None)
    attachment = call["body"]["message"]["attachment"]
    assert attachment["type"] == "template"
    payload = attachment["payload"]
    assert payload["template_type"] == "button"
    assert [(b["type"], b["payload"], b["title"]) for b in payload["buttons"]] == [
        ("postback", "sales", "Sales"),
        ("postback", "support", "Support"),
    ]
    await eventually(lambda: not wa._tasks, timeout=10)


async def test_instagram_buttons_are_quick_replies(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, _created = await _setup(api, wa, "instagram")
    await wa.post_page_inbound(wa.pages[PAGE_ID], "hello", name="Fox Mulder")
    conversation = await _conversation(api, owner, ws)
    body = {
        "type": "interactive",
        "text": "Pick one",
        "buttons": [{"id": "a", "title": "Apples"}, {"id": "b", "title": "Pears"}],
    }
    assert (await _reply(api, owner, ws, conversation["id"], body)).status_code == 201
    call = await eventually(lambda: wa.page_sent[0] if wa.page_sent else None)
    message = call["body"]["message"]
    assert message["text"] == "Pick one"
    assert [(q["title"], q["payload"]) for q in message["quick_replies"]] == [
        ("Apples", "a"),
        ("Pears", "b"),
    ]
    await eventually(lambda: not wa._tasks, timeout=10)


async def _age(runtime: Runtime, conversation_id: str, days: float) -> None:
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(
            update(Conversation)
            .where(Conversation.id == uuid.UUID(conversation_id))
            .values(last_inbound_at=utcnow() - timedelta(days=days))
        )


async def test_window_and_message_tags(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, _created = await _setup(api, wa)
    await wa.post_page_inbound(wa.pages[PAGE_ID], "hello", name="Ada Lovelace")
    conversation = await _conversation(api, owner, ws)
    await _age(runtime, conversation["id"], 2)
    key = await api.create_key(owner, ws, ["conversations:reply", "conversations:read"])
    as_key = Account(owner.email, "", key["key"], owner.user_id)
    # An API key is no person: outside 24 h only a tag the send names lets it through.
    refused = await _reply(api, as_key, ws, conversation["id"], {"text": "late"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "window_closed"
    wrong = await _reply(api, owner, ws, conversation["id"], {"text": "x", "tag": "NOT_A_TAG"})
    assert wrong.status_code == 422
    tagged = await _reply(
        api,
        owner,
        ws,
        conversation["id"],
        {"text": "Your order shipped", "tag": "POST_PURCHASE_UPDATE"},
    )
    assert tagged.status_code == 201, tagged.text
    # A person's reply within 7 days goes out with HUMAN_AGENT by itself.
    agent = await _reply(api, owner, ws, conversation["id"], {"text": "Sorry for the wait"})
    assert agent.status_code == 201, agent.text
    calls = await eventually(lambda: wa.page_sent if len(wa.page_sent) >= 2 else None)
    by_text = {c["body"]["message"]["text"]: c["body"] for c in calls}
    assert by_text["Your order shipped"]["messaging_type"] == "MESSAGE_TAG"
    assert by_text["Your order shipped"]["tag"] == "POST_PURCHASE_UPDATE"
    assert by_text["Sorry for the wait"]["tag"] == "HUMAN_AGENT"
    await _age(runtime, conversation["id"], 8)
    closed = await _reply(api, owner, ws, conversation["id"], {"text": "too late"})
    assert closed.status_code == 422 and closed.json()["error"]["code"] == "window_closed"
    human = {"text": "too late", "tag": "HUMAN_AGENT"}
    assert (await _reply(api, owner, ws, conversation["id"], human)).status_code == 422
    update_ = {"text": "Your password changed", "tag": "ACCOUNT_UPDATE"}
    assert (await _reply(api, owner, ws, conversation["id"], update_)).status_code == 201
    await eventually(lambda: not wa._tasks, timeout=10)


@pytest.mark.parametrize(("code", "final"), [(551, "551"), (613, None)])
async def test_send_errors_are_classified(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, code: int, final: str | None
) -> None:
    owner, ws, _created = await _setup(api, wa)
    await wa.post_page_inbound(wa.pages[PAGE_ID], "hello", name="Ada Lovelace")
    conversation = await _conversation(api, owner, ws)
    wa.fail_next(400, code)
    sent = await _reply(api, owner, ws, conversation["id"], {"text": "Hi"})
    assert sent.status_code == 201

    async def settled() -> dict[str, Any] | None:
        items = await _messages(api, owner, ws, conversation["id"])
        out = next(m for m in items if m["direction"] == "outbound")
        return out if out["status"] in ("failed", "sent", "delivered", "read") else None

    out = await eventually(settled, timeout=30)
    if final is None:  # throttled: tried again, and sent
        assert out["status"] != "failed" and len(wa.page_sent) == 1
    else:
        assert (out["status"], out["error_code"]) == ("failed", final)
    await eventually(lambda: not wa._tasks, timeout=10)


async def test_profile_is_fetched_once_off_the_hot_path(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, page, psid, conversation = await _first_message(api, wa)

    async def named() -> dict[str, Any] | None:
        response = await client.get(
            f"/api/v1/workspaces/{ws}/contacts/{conversation['contact_id']}",
            headers=owner.headers,
        )
        data = response.json()["data"]
        return data if data["name"] == "Ada Lovelace" else None

    contact = await eventually(named)
    [identity] = contact["identities"]
    assert identity["provider"] == "messenger" and identity["external_id"] == psid
    assert identity["profile_picture_url"].endswith(f"{psid}.jpg")
    await wa.post_page_inbound(page, "again", psid=psid)
    await eventually(
        lambda: len(wa.webhooks) >= 2 and not wa._tasks, timeout=10
    )  # the second message is in
    assert wa.profile_reads == [psid]  # cached: read once a day at most


async def _profile_age(runtime: Runtime, psid: str, age: timedelta) -> None:
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(
            update(ContactIdentity)
            .where(ContactIdentity.external_id == psid)
            .values(profile_fetched_at=utcnow() - age)
        )


@pytest.mark.parametrize("with_bot", [False, True], ids=["batched", "per_item"])
async def test_profile_is_read_again_when_a_day_old(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime, with_bot: bool
) -> None:
    owner, ws, _created = await _setup(api, wa)
    if with_bot:  # a live bot sends the channel's messages through the per-item path
        bot = await create_bot(api, owner, ws, support_flow())
        await publish(api, owner, ws, bot["id"])
    page = wa.pages[PAGE_ID]
    psid, _mid = await wa.post_page_inbound(page, "hello", name="Ada Lovelace")
    conversation = await _conversation(api, owner, ws)
    await eventually(lambda: wa.profile_reads == [psid])

    async def inbound(count: int) -> bool:
        items = await _messages(api, owner, ws, conversation["id"])
        return len([m for m in items if m["direction"] == "inbound"]) >= count

    await _profile_age(runtime, psid, timedelta(hours=1))
    await wa.post_page_inbound(page, "an hour later", psid=psid)
    await eventually(lambda: inbound(2))
    await _profile_age(runtime, psid, timedelta(days=2))
    await wa.post_page_inbound(page, "two days later", psid=psid)
    await eventually(lambda: inbound(3))
    await eventually(lambda: len(wa.profile_reads) >= 2)
    await eventually(lambda: not wa._tasks, timeout=10)
    assert wa.profile_reads == [psid, psid]  # the hour-old profile was not read again


async def test_unknown_items_and_bare_referrals_are_kept(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, page, psid, conversation = await _first_message(api, wa)
    base = {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": meta.now_ms()}
    odd = {**base, "game_play": {"game_id": "g1", "score": 7}}
    referral = {"ref": "spring-sale", "source": "SHORTLINK", "type": "OPEN_THREAD"}
    await wa.deliver_page(page, odd)
    await wa.deliver_page(page, {**base, "referral": referral})
    await wa.deliver_page(page, {**base, "referral": referral})  # redelivered: once

    async def kept() -> list[dict[str, Any]] | None:
        items = await _messages(api, owner, ws, conversation["id"])
        found = [m for m in items if m["type"] == "unsupported"]
        return found if len(found) >= 2 else None

    await eventually(kept)
    await eventually(lambda: not wa._tasks, timeout=10)
    found = await _messages(api, owner, ws, conversation["id"])
    unsupported = [m for m in found if m["type"] == "unsupported"]
    assert len(unsupported) == 2 and all(m["direction"] == "inbound" for m in unsupported)
    by_raw = {("referral" in m["content"]["raw"]): m for m in unsupported}
    assert by_raw[False]["content"]["raw"]["game_play"] == {"game_id": "g1", "score": 7}
    assert by_raw[True]["content"]["referral"] == referral


async def test_merge_two_contacts_of_one_person(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, _created = await _setup(api, wa)
    whatsapp = await api.create_channel(owner, ws)
    await api.inbound_text(whatsapp["id"], "15557654321", "hi from WhatsApp", name="Ada L")
    await wa.post_page_inbound(wa.pages[PAGE_ID], "hi from Messenger", name="Ada Lovelace")

    async def two() -> list[dict[str, Any]] | None:
        response = await client.get(f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers)
        items = response.json()["data"]["items"]
        return items if len(items) == 2 else None

    first, second = await eventually(two)
    assert first["contact_id"] != second["contact_id"]
    merged = await client.post(
        f"/api/v1/workspaces/{ws}/contacts/{first['contact_id']}/merge",
        json={"contact_id": second["contact_id"]},
        headers=owner.headers,
    )
    assert merged.status_code == 200, merged.text
    providers = sorted(i["provider"] for i in merged.json()["data"]["identities"])
    assert providers == ["messenger", "whatsapp"]
    conversations = (
        await client.get(f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers)
    ).json()["data"]["items"]
    assert {c["contact_id"] for c in conversations} == {first["contact_id"]}
    assert {c["channel_id"] for c in conversations} == {whatsapp["id"], _created["id"]}
    contacts = (
        await client.get(f"/api/v1/workspaces/{ws}/contacts", headers=owner.headers)
    ).json()["data"]["items"]
    assert [c["id"] for c in contacts] == [first["contact_id"]]
    gone = await client.get(
        f"/api/v1/workspaces/{ws}/contacts/{second['contact_id']}", headers=owner.headers
    )
    assert gone.status_code == 404
    itself = await client.post(
        f"/api/v1/workspaces/{ws}/contacts/{first['contact_id']}/merge",
        json={"contact_id": first["contact_id"]},
        headers=owner.headers,
    )
    assert itself.status_code == 422


@pytest.mark.parametrize("provider", ["messenger", "instagram"])
async def test_a_sandbox_page_works_on_the_first_try(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, provider: str
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    response = await client.post(
        f"/api/v1/workspaces/{ws}/channels/sandbox",
        json={"provider": provider},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    channel = response.json()["data"]
    assert channel["provider"] == provider and channel["sandbox"] is True
    assert channel["name"] == f"{provider.capitalize()} sandbox"
    page = wa.pages[channel["page_id"]]
    assert page.webhook_url == channel["webhook_url"] and page.provider == provider
    await wa.post_page_inbound(page, "Where is my order?", name="Ada Lovelace")
    conversation = await _conversation(api, owner, ws)
    assert (
        await _reply(api, owner, ws, conversation["id"], {"text": "On its way"})
    ).status_code == 201
    call = await eventually(lambda: wa.page_sent[0] if wa.page_sent else None)
    assert call["body"]["message"]["text"] == "On its way"
    await eventually(lambda: not wa._tasks, timeout=10)


async def test_media_upload_send_and_inbound_fetch(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    from tests.conftest import GRAPH_PORT
    from tests.media.test_storage import _png

    owner, ws, created = await _setup(api, wa)
    page = wa.pages[PAGE_ID]
    psid, _mid = await wa.post_page_inbound(page, "hello", name="Ada Lovelace")
    conversation = await _conversation(api, owner, ws)
    image = _png()
    uploaded = await client.post(
        f"/api/v1/workspaces/{ws}/channels/{created['id']}/media",
        files={"file": ("photo.png", image, "image/png")},
        headers=owner.headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    attachment_id = uploaded.json()["data"]["id"]
    assert wa.media[attachment_id].data == image
    body = {"type": "image", "media": {"id": attachment_id}}
    assert (await _reply(api, owner, ws, conversation["id"], body)).status_code == 201
    call = await eventually(lambda: wa.page_sent[0] if wa.page_sent else None)
    assert call["body"]["message"]["attachment"] == {
        "type": "image",
        "payload": {"attachment_id": attachment_id},
    }
    # A customer's photo: Meta's attachment URL, fetched into storage.
    media_id = wa.add_media(image, "image/png")
    await wa.deliver_page(
        page,
        {
            "sender": {"id": psid},
            "recipient": {"id": PAGE_ID},
            "timestamp": 1700000000000,
            "message": {
                "mid": "m_photo",
                "attachments": [
                    {
                        "type": "image",
                        "payload": {"url": f"http://127.0.0.1:{GRAPH_PORT}/cdn/{media_id}"},
                    }
                ],
            },
        },
    )

    async def stored() -> dict[str, Any] | None:
        items = await _messages(api, owner, ws, conversation["id"])
        photo = next(
            (m for m in items if m["type"] == "image" and m["direction"] == "inbound"), None
        )
        return photo if photo and photo["media_status"] == "stored" else None

    photo = await eventually(stored)
    assert photo["media_url"]
    await eventually(lambda: not wa._tasks, timeout=10)


async def test_edits_unsends_reactions_and_late_watermarks(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, _created = await _setup(api, wa)
    page = wa.pages[PAGE_ID]
    psid, mid = await wa.post_page_inbound(page, "helo", name="Ada Lovelace")
    conversation = await _conversation(api, owner, ws)

    def item(**extra: Any) -> dict[str, Any]:
        base = {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": 1700000000123}
        return {**base, **extra}

    await wa.deliver_page(page, item(message_edit={"mid": mid, "text": "hello", "num_edit": 1}))
    await wa.deliver_page(page, item(reaction={"mid": mid, "action": "react", "emoji": "👍"}))
    await wa.deliver_page(page, item(reaction={"mid": mid, "action": "react", "emoji": "👍"}))

    async def edited() -> list[dict[str, Any]] | None:
        items = await _messages(api, owner, ws, conversation["id"])
        first = next(m for m in items if m["provider_message_id"] == mid)
        reactions = [m for m in items if m["type"] == "reaction"]
        return items if first["text"] == "hello" and first["edited"] and reactions else None

    items = await eventually(edited)
    assert len([m for m in items if m["type"] == "reaction"]) == 1  # a redelivery is one
    second = await wa.post_page_inbound(page, "oops", psid=psid)

    async def arrived() -> bool:
        items = await _messages(api, owner, ws, conversation["id"])
        return any(m["provider_message_id"] == second[1] for m in items)

    await eventually(arrived)  # an unsend of a message not stored yet has nothing to hide
    await wa.deliver_page(page, item(message={"mid": second[1], "is_deleted": True}))

    async def unsent() -> bool:
        items = await _messages(api, owner, ws, conversation["id"])
        return any(m["provider_message_id"] == second[1] and m["deleted"] for m in items)

    await eventually(unsent)
    # Our reply reaches read; a late delivery watermark leaves it there.
    assert (await _reply(api, owner, ws, conversation["id"], {"text": "Hi"})).status_code == 201

    async def read() -> dict[str, Any] | None:
        items = await _messages(api, owner, ws, conversation["id"])
        out = next((m for m in items if m["direction"] == "outbound"), None)
        return out if out and out["status"] == "read" else None

    await eventually(read)
    await wa.deliver_page(page, item(delivery={"watermark": 1900000000000}))
    items = await _messages(api, owner, ws, conversation["id"])
    assert next(m for m in items if m["direction"] == "outbound")["status"] == "read"
    await eventually(lambda: not wa._tasks, timeout=10)


async def test_reading_a_conversation_marks_it_seen(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, _created = await _setup(api, wa)
    psid, _mid = await wa.post_page_inbound(wa.pages[PAGE_ID], "hello", name="Ada Lovelace")
    conversation = await _conversation(api, owner, ws)
    marked = await client.patch(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}",
        json={"mark_read": True},
        headers=owner.headers,
    )
    assert marked.status_code == 200, marked.text
    action = await eventually(lambda: wa.page_actions[0] if wa.page_actions else None)
    assert action["body"] == {"recipient": {"id": psid}, "sender_action": "mark_seen"}
