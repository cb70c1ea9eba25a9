"""Telegram end to end, on both backends, against the fake Bot API on loopback
(`botplatform sandbox telegram`): connecting a bot (getMe, setWebhook) and deleting it
(deleteWebhook), the secret token, dedup by update_id, replies in HTML with our text
escaped, bot buttons as inline keyboards and their taps answered, media both ways, blocks
opting out, and a 429's retry_after honoured."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from botplatform.models import ContactIdentity, InboundEvent
from botplatform.runtime import Runtime
from botplatform.sandbox.telegram import SECRET_HEADER, Bot, FakeBotApi, square_png
from tests.bot.flows import support_flow
from tests.bot.helpers import create_bot, publish
from tests.conftest import PROVIDER_SAMPLES, TELEGRAM_TOKEN, Account, Api, eventually
from tests.dashboard.helpers import browser_login, csrf_of

USER = 100000001


async def _channel(
    api: Api, owner: Account, ws: str, token: str = TELEGRAM_TOKEN
) -> dict[str, Any]:
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/channels",
        json={"provider": "telegram", "bot_token": token},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


async def _setup(api: Api, tg: FakeBotApi) -> tuple[Account, str, dict[str, Any], Bot]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await _channel(api, owner, ws)
    return owner, ws, channel, tg.bots[TELEGRAM_TOKEN]


async def _conversation(api: Api, owner: Account, ws: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        response = await api.http.get(
            f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers
        )
        items = response.json()["data"]["items"]
        return items[0] if items else None

    return dict(await eventually(find))


async def _messages(api: Api, owner: Account, ws: str, conversation_id: str) -> list[Any]:
    response = await api.http.get(
        f"/api/v1/workspaces/{ws}/conversations/{conversation_id}/messages", headers=owner.headers
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["items"])


async def _reply(
    api: Api, owner: Account, ws: str, conversation_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation_id}/messages",
        json=body,
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


def _sends(tg: FakeBotApi, method: str) -> list[dict[str, Any]]:
    return [call for call in tg.sent if call["method"] == method]


async def _status(api: Api, owner: Account, ws: str, conversation_id: str, row_id: str) -> Any:
    async def settled() -> dict[str, Any] | None:
        items = await _messages(api, owner, ws, conversation_id)
        row = next((m for m in items if m["id"] == row_id), None)
        return row if row and row["status"] in ("sent", "failed") else None

    return await eventually(settled)


async def test_connect_registers_the_webhook_and_delete_removes_it(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    owner, ws, channel, bot = await _setup(api, tg)
    assert channel["provider"] == "telegram" and channel["telegram_bot_username"] == bot.username
    assert channel["name"] == bot.first_name and channel["send_rate_per_second"] == 30
    assert bot.webhook_url == channel["webhook_url"]
    assert bot.webhook_url.endswith(f"/webhooks/telegram/{channel['id']}")
    assert bot.secret_token == channel["verify_token"] and len(bot.secret_token) >= 32
    assert bot.allowed_updates and "callback_query" in bot.allowed_updates
    set_webhook = _sends(tg, "setWebhook")[0]["params"]
    assert set_webhook["drop_pending_updates"] is False
    again = await client.post(
        f"/api/v1/workspaces/{ws}/channels",
        json={"provider": "telegram", "bot_token": TELEGRAM_TOKEN},
        headers=owner.headers,
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "channel_exists"
    refused = await client.post(
        f"/api/v1/workspaces/{ws}/channels",
        json={"provider": "telegram", "bot_token": "123:not-a-known-token"},
        headers=owner.headers,
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_bot_token"
    missing = await client.post(
        f"/api/v1/workspaces/{ws}/channels", json={"provider": "telegram"}, headers=owner.headers
    )
    assert missing.status_code == 422
    # A new secret (or token) is told to Telegram at once; another bot's token is refused.
    patched = await client.patch(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}",
        json={"verify_token": "a-new_secret-token-123"},
        headers=owner.headers,
    )
    assert patched.status_code == 200, patched.text
    assert bot.secret_token == "a-new_secret-token-123"
    other = tg.new_bot()
    swapped = await client.patch(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}",
        json={"access_token": other.token},
        headers=owner.headers,
    )
    assert swapped.status_code == 422 and swapped.json()["error"]["code"] == "invalid_bot_token"
    assert other.webhook_url is None
    kept = await client.get(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}", headers=owner.headers
    )
    assert kept.json()["data"]["access_token_hint"] == channel["access_token_hint"]
    deleted = await client.delete(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}", headers=owner.headers
    )
    assert deleted.status_code == 200
    assert bot.webhook_url is None and _sends(tg, "deleteWebhook")


async def test_secret_token_is_checked_and_updates_are_stored_once(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi, runtime: Runtime
) -> None:
    _owner, _ws, channel, bot = await _setup(api, tg)
    update = tg.user_message(bot, USER, "Ada", "hello")
    url = f"/webhooks/telegram/{channel['id']}"
    for headers in ({}, {SECRET_HEADER: "wrong"}):
        forged = await client.post(url, json=update, headers=headers)
        assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "invalid_secret_token"
    good = {SECRET_HEADER: channel["verify_token"]}
    first = await client.post(url, content=json.dumps(update), headers=good)
    assert first.status_code == 200 and first.json()["data"]["duplicate"] is False
    # Telegram's redelivery of the same update, encoded differently: still the same one.
    again = await client.post(url, content=json.dumps(update, indent=2), headers=good)
    assert again.json()["data"]["duplicate"] is True
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        assert len((await db.execute(select(InboundEvent))).scalars().all()) == 1


async def test_inbound_and_replies_in_escaped_html(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    owner, ws, _channel_out, bot = await _setup(api, tg)
    await tg.push(bot, tg.user_message(bot, USER, "Ada", "hello <there>"))
    conversation = await _conversation(api, owner, ws)
    inbound = (await _messages(api, owner, ws, conversation["id"]))[0]
    assert inbound["text"] == "hello <there>" and inbound["direction"] == "inbound"
    sent = await _reply(api, owner, ws, conversation["id"], {"type": "text", "text": "1 < 2 & <b>"})
    row = await _status(api, owner, ws, conversation["id"], sent["id"])
    assert row["status"] == "sent", row
    call = _sends(tg, "sendMessage")[0]["params"]
    assert call["parse_mode"] == "HTML" and call["text"] == "1 &lt; 2 &amp; &lt;b&gt;"
    assert str(call["chat_id"]) == str(USER)
    assert row["provider_message_id"] == f"{USER}:{tg.sent[-1]['result']['message_id']}"
    # A reaction to the customer's message.
    await _reply(
        api,
        owner,
        ws,
        conversation["id"],
        {"type": "reaction", "reaction_to": inbound["provider_message_id"], "emoji": "👍"},
    )
    await eventually(lambda: _sends(tg, "setMessageReaction") or None)
    reaction = _sends(tg, "setMessageReaction")[0]["params"]
    assert reaction["reaction"] == [{"type": "emoji", "emoji": "👍"}]
    assert f"{reaction['chat_id']}:{reaction['message_id']}" == inbound["provider_message_id"]


async def test_bot_buttons_become_an_inline_keyboard_and_taps_are_answered(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    owner, ws, _channel_out, bot = await _setup(api, tg)
    flow = await create_bot(api, owner, ws, support_flow())
    await publish(api, owner, ws, flow["id"])
    await tg.push(bot, tg.user_message(bot, USER, "Dana <Scully>", "hi"))
    menu = await eventually(lambda: _sends(tg, "sendMessage") or None)
    params = menu[0]["params"]
    assert params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Sales", "callback_data": "sales"}],
            [{"text": "Support", "callback_data": "support"}],
        ]
    }
    assert "Dana &lt;Scully&gt;" in params["text"]
    tap = tg.button_tap(bot, USER, "support")
    assert await tg.push(bot, tap) == 200
    await eventually(lambda: tap["callback_query"]["id"] in tg.answered)
    bye = await eventually(
        lambda: (
            [c for c in _sends(tg, "sendMessage") if "help center" in c["params"]["text"]] or None
        )
    )
    assert bye


async def test_blocking_the_bot_opts_the_contact_out(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    owner, ws, _channel_out, bot = await _setup(api, tg)
    await tg.push(bot, tg.user_message(bot, USER, "Ada", "hello"))
    conversation = await _conversation(api, owner, ws)
    await tg.push(bot, tg.block(bot, USER))

    async def opted_out() -> bool:
        response = await client.get(
            f"/api/v1/workspaces/{ws}/contacts/{conversation['contact_id']}",
            headers=owner.headers,
        )
        return bool(response.json()["data"]["opted_out"])

    await eventually(opted_out)
    refused = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"type": "text", "text": "still there?"},
        headers=owner.headers,
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "opted_out"


async def test_a_send_to_a_user_who_blocked_the_bot_fails_and_opts_out(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    owner, ws, _channel_out, bot = await _setup(api, tg)
    await tg.push(bot, tg.user_message(bot, USER, "Ada", "hello"))
    conversation = await _conversation(api, owner, ws)
    bot.blocked_by.add(USER)  # blocked, and the update about it never arrived
    sent = await _reply(api, owner, ws, conversation["id"], {"type": "text", "text": "hi"})
    row = await _status(api, owner, ws, conversation["id"], sent["id"])
    assert (row["status"], row["error_code"]) == ("failed", "recipient_blocked")

    async def opted_out() -> bool:
        response = await client.get(
            f"/api/v1/workspaces/{ws}/contacts/{conversation['contact_id']}",
            headers=owner.headers,
        )
        return bool(response.json()["data"]["opted_out"])

    await eventually(opted_out)


async def test_retry_after_is_honoured_exactly(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    owner, ws, _channel_out, bot = await _setup(api, tg)
    await tg.push(bot, tg.user_message(bot, USER, "Ada", "hello"))
    conversation = await _conversation(api, owner, ws)
    tg.fail_next(429, "Too Many Requests: retry after 2", retry_after=2)
    started = time.monotonic()
    sent = await _reply(api, owner, ws, conversation["id"], {"type": "text", "text": "hi"})
    row = await _status(api, owner, ws, conversation["id"], sent["id"])
    assert row["status"] == "sent", row
    assert time.monotonic() - started >= 2.0  # not the job's own (shorter) backoff
    assert len(_sends(tg, "sendMessage")) == 1  # the refused try is not recorded as sent


async def test_media_both_ways(client: httpx.AsyncClient, api: Api, tg: FakeBotApi) -> None:
    from tests.media.test_storage import _png

    owner, ws, channel, bot = await _setup(api, tg)
    image = _png()
    file_id = tg.add_file(image, "image/png")
    photo = [
        {"file_id": "thumb", "width": 10, "height": 10},
        {"file_id": file_id, "width": 640, "height": 480},
    ]
    await tg.push(bot, tg.user_message(bot, USER, "Ada", None, photo=photo, caption="look"))
    conversation = await _conversation(api, owner, ws)

    async def stored() -> dict[str, Any] | None:
        items = await _messages(api, owner, ws, conversation["id"])
        found = next((m for m in items if m["type"] == "image"), None)
        return found if found and found["media_status"] == "stored" else None

    inbound = await eventually(stored)
    assert inbound["text"] == "look" and inbound["media_url"]
    uploaded = await client.post(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}/media",
        files={"file": ("photo.png", image, "image/png")},
        headers=owner.headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    media_id = uploaded.json()["data"]["id"]
    assert media_id.startswith("upload:")
    sent = await _reply(
        api,
        owner,
        ws,
        conversation["id"],
        {"type": "image", "media": {"id": media_id, "caption": "a <pic>"}},
    )
    row = await _status(api, owner, ws, conversation["id"], sent["id"])
    assert row["status"] == "sent", row
    call = _sends(tg, "sendPhoto")[0]
    assert call["params"]["caption"] == "a &lt;pic&gt;"
    sent_file = call["result"]["photo"][0]["file_id"]
    assert tg.files[sent_file][0] == image  # the bytes went up as multipart
    by_link = await _reply(
        api,
        owner,
        ws,
        conversation["id"],
        {"type": "document", "media": {"link": "https://example.com/a.pdf"}},
    )
    assert (await _status(api, owner, ws, conversation["id"], by_link["id"]))["status"] == "sent"
    assert _sends(tg, "sendDocument")[0]["params"]["document"] == "https://example.com/a.pdf"


SAMPLE_FILES = sorted((PROVIDER_SAMPLES / "telegram").glob("*.json"))


@pytest.mark.parametrize("sample", SAMPLE_FILES, ids=lambda path: path.stem)
async def test_every_sample_is_accepted_and_processed(
    sample: Path, client: httpx.AsyncClient, api: Api, tg: FakeBotApi, runtime: Runtime
) -> None:
    _owner, _ws, channel, _bot = await _setup(api, tg)
    body = sample.read_bytes()
    response = await client.post(
        f"/webhooks/telegram/{channel['id']}",
        content=body,
        headers={SECRET_HEADER: channel["verify_token"]},
    )
    assert response.status_code == 200, response.text

    async def done() -> str | None:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            event = (await db.execute(select(InboundEvent))).scalar_one_or_none()
            return event.status if event and event.status != "pending" else None

    assert await eventually(done) == "processed"


async def test_api_sends_to_users_and_groups_and_events_go_out(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    from tests.conftest import Account
    from tests.fakes.webhook_receiver import running_receiver

    owner, ws, channel, bot = await _setup(api, tg)
    async with running_receiver() as receiver:
        await api.subscribe(owner, ws, receiver.url)
        await tg.push(bot, tg.user_message(bot, USER, "Ada", "hello"))
        key = await api.create_key(owner, ws, ["conversations:reply", "conversations:read"])
        as_key = Account(owner.email, "", key["key"], owner.user_id)
        for chat in (str(USER), "-1001234567890"):  # a person who started the bot; a group
            response = await client.post(
                f"/api/v1/workspaces/{ws}/messages",
                json={"channel_id": channel["id"], "to": chat, "type": "text", "text": "news"},
                headers=as_key.headers,
            )
            assert response.status_code == 201, response.text
        sends = await eventually(lambda: s if len(s := _sends(tg, "sendMessage")) >= 2 else None)
        assert sorted(str(c["params"]["chat_id"]) for c in sends) == sorted(
            [str(USER), "-1001234567890"]
        )

        def kinds() -> set[str]:
            return {json.loads(r.body).get("type", "") for r in receiver.received}

        await eventually(lambda: {"message.received", "message.sent"} <= kinds() or None)


async def test_a_telegram_contact_merges_with_the_persons_whatsapp_one(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    owner, ws, _channel_out, bot = await _setup(api, tg)
    whatsapp = await api.create_channel(owner, ws)
    await api.inbound_text(whatsapp["id"], "15557654321", "hi from WhatsApp", name="Ada L")
    await tg.push(bot, tg.user_message(bot, USER, "Ada", "hi from Telegram"))

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
    assert identities == {"telegram": str(USER), "whatsapp": "15557654321"}


async def test_a_broadcast_reaches_bot_users_and_opts_out_who_blocked_it(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    from tests.broadcast.helpers import Shop

    owner, ws, channel, bot = await _setup(api, tg)
    for user, name in ((USER, "Ada"), (USER + 1, "Bob")):
        await tg.push(bot, tg.user_message(bot, user, name, "hello"))

    async def contacts() -> dict[str, str] | None:
        response = await client.get(f"/api/v1/workspaces/{ws}/contacts", headers=owner.headers)
        items = response.json()["data"]["items"]
        return {c["name"]: c["id"] for c in items} if len(items) == 2 else None

    ids = await eventually(contacts)
    bot.blocked_by.add(USER + 1)
    shop = Shop(api, owner, ws, channel)
    made = await shop.create(
        [],
        message={"type": "text", "text": "Spring sale <today>"},
        audience={"type": "list", "contact_ids": list(ids.values())},
    )
    await shop.start(made["id"])
    done = await shop.finished(made["id"])
    counts = done["counts"]
    assert (counts["sent"], counts["failed"]) == (1, 1), done
    assert counts["failed_by_code"] == {"recipient_blocked": 1}
    texts = [c["params"]["text"] for c in _sends(tg, "sendMessage")]
    assert texts == ["Spring sale &lt;today&gt;"]

    async def opted_out(contact_id: str) -> bool:
        response = await client.get(
            f"/api/v1/workspaces/{ws}/contacts/{contact_id}", headers=owner.headers
        )
        return bool(response.json()["data"]["opted_out"])

    assert await opted_out(ids["Bob"]) and not await opted_out(ids["Ada"])


async def test_avatars_are_fetched_once_and_served_by_us_never_with_the_token(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi, runtime: Runtime
) -> None:
    """Telegram's file URLs carry the bot token: the avatar is downloaded once by a job,
    stored in our media storage and shown as a signed link to our copy. A person without a
    photo, or whose photo is unusable, simply has none."""
    owner, ws, _channel_out, bot = await _setup(api, tg)
    picture = square_png(b"\x10\x80\xf0")
    tg.set_avatar(USER, picture)
    tg.set_avatar(USER + 1, b"not an image at all", "image/jpeg")
    people = {USER: "Ada", USER + 1: "Bob", USER + 2: "Cy"}  # Cy shows no photo
    for user, name in people.items():
        await tg.push(bot, tg.user_message(bot, user, name, "hello"))

    async def identities() -> dict[str, dict[str, Any]] | None:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            rows = (await db.execute(select(ContactIdentity))).scalars().all()
            mine = {r.external_id: r for r in rows if r.workspace_id == uuid.UUID(ws)}
            done = len(mine) == 3 and all(r.profile_picture_key is not None for r in mine.values())
            return {k: vars(r) for k, r in mine.items()} if done else None

    found = await eventually(identities)
    assert found[str(USER + 1)]["profile_picture_key"] == ""  # tried, unusable: none
    assert found[str(USER + 2)]["profile_picture_key"] == ""  # tried, no photo: none
    assert all(row["profile_picture_url"] is None for row in found.values())  # no token URL
    contact = await client.get(
        f"/api/v1/workspaces/{ws}/contacts/{found[str(USER)]['contact_id']}",
        headers=owner.headers,
    )
    [identity] = contact.json()["data"]["identities"]
    url = httpx.URL(identity["profile_picture_url"])
    assert bot.token not in str(url) and url.path.startswith(f"/media/ws/{ws}/")
    served = await client.get(url.raw_path.decode())
    assert (served.status_code, served.content) == (200, picture)
    assert sorted(tg.photo_lookups) == sorted(people)
    # A day later the profile is read again (the name), the avatar is not.
    async with runtime.db.unit_of_work(system=True) as db:
        mine = ContactIdentity.workspace_id == uuid.UUID(ws)
        await db.execute(update(ContactIdentity).where(mine).values(profile_fetched_at=None))
    await tg.push(bot, tg.user_message(bot, USER, "Ada", "again"))

    async def reread() -> bool | None:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            row = (
                await db.execute(
                    select(ContactIdentity).where(mine, ContactIdentity.external_id == str(USER))
                )
            ).scalar_one()
            return True if row.profile_fetched_at is not None else None

    assert await eventually(reread)
    assert sorted(tg.photo_lookups) == sorted(people)
    # Erasing the person removes our copy of their avatar too.
    key = found[str(USER)]["profile_picture_key"]
    assert await runtime.media.exists(key)
    erased = await client.delete(
        f"/api/v1/workspaces/{ws}/contacts/{found[str(USER)]['contact_id']}",
        headers=owner.headers,
    )
    assert erased.status_code == 200, erased.text

    async def gone() -> bool | None:
        return True if not await runtime.media.exists(key) else None

    assert await eventually(gone)


async def test_the_customer_sees_a_bot_typing_before_its_answer_and_an_agent_typing(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    owner, ws, _channel_out, bot = await _setup(api, tg)
    flow = await create_bot(api, owner, ws, support_flow())
    await publish(api, owner, ws, flow["id"])
    await tg.push(bot, tg.user_message(bot, USER, "Ada", "hi"))
    await eventually(lambda: _sends(tg, "sendMessage") or None)
    methods = [call["method"] for call in tg.sent]
    typing = _sends(tg, "sendChatAction")
    assert typing and typing[0]["params"] == {"chat_id": str(USER), "action": "typing"}
    assert methods.index("sendChatAction") < methods.index("sendMessage")  # before the answer
    conversation = await _conversation(api, owner, ws)
    shown = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/typing",
        headers=owner.headers,
    )
    assert (shown.status_code, shown.json()["data"]) == (202, {"typing": True})
    assert await eventually(lambda: len(_sends(tg, "sendChatAction")) == 2 or None)
    viewer = await api.add_member(owner, ws, "viewer")  # reads, never writes to customers
    refused = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/typing",
        headers=viewer.headers,
    )
    assert refused.status_code == 403
    # In the inbox, the reply box says so as the agent types (htmx, throttled).
    await browser_login(client, owner.email, owner.password)
    page = await client.get(f"/app/w/{ws}/inbox/{conversation['id']}")
    box = f"/app/w/{ws}/inbox/{conversation['id']}/typing"
    assert f'hx-post="{box}"' in page.text
    typed = await client.post(box, data={"csrf_token": csrf_of(page.text), "text": "On"})
    assert typed.status_code == 204
    assert await eventually(lambda: len(_sends(tg, "sendChatAction")) == 3 or None)


async def test_an_agent_edits_a_sent_text_and_only_that(
    client: httpx.AsyncClient, api: Api, tg: FakeBotApi
) -> None:
    owner, ws, _channel_out, bot = await _setup(api, tg)
    await tg.push(bot, tg.user_message(bot, USER, "Ada", "hello"))
    conversation = await _conversation(api, owner, ws)
    sent = await _reply(api, owner, ws, conversation["id"], {"type": "text", "text": "10 pm"})
    row = await _status(api, owner, ws, conversation["id"], sent["id"])
    url = f"/api/v1/workspaces/{ws}/messages/{sent['id']}"
    edited = await client.patch(url, json={"text": "10 am <sharp>"}, headers=owner.headers)
    assert edited.status_code == 200, edited.text
    data = edited.json()["data"]
    assert (data["text"], data["edited"], data["content"]["edit"]) == (
        "10 am <sharp>",
        True,
        {"status": "pending"},
    )
    call = (await eventually(lambda: _sends(tg, "editMessageText") or None))[0]["params"]
    assert f"{call['chat_id']}:{call['message_id']}" == row["provider_message_id"]
    assert call["text"] == "10 am &lt;sharp&gt;" and call["parse_mode"] == "HTML"

    async def settled() -> dict[str, Any] | None:
        items = await _messages(api, owner, ws, conversation["id"])
        found = next(m for m in items if m["id"] == sent["id"])
        return found if found["content"]["edit"]["status"] != "pending" else None

    assert (await eventually(settled))["content"]["edit"] == {"status": "sent"}
    # The same text again: Telegram answers 400 "message is not modified", which means the
    # customer already sees it: the edit is done, not failed.
    again = await client.patch(url, json={"text": "10 am <sharp>"}, headers=owner.headers)
    assert again.status_code == 200, again.text
    assert (await eventually(settled))["content"]["edit"] == {"status": "sent"}
    inbound = (await _messages(api, owner, ws, conversation["id"]))[0]
    note = await _reply(api, owner, ws, conversation["id"], {"text": "internal", "note": True})
    for other in (inbound, note):
        refused = await client.patch(
            f"/api/v1/workspaces/{ws}/messages/{other['id']}",
            json={"text": "x"},
            headers=owner.headers,
        )
        assert refused.status_code == 409 and refused.json()["error"]["code"] == (
            "message_not_editable"
        )
    stranger = await api.register()
    elsewhere = await api.create_workspace(stranger)
    hidden = await client.patch(
        f"/api/v1/workspaces/{elsewhere}/messages/{sent['id']}",
        json={"text": "x"},
        headers=stranger.headers,
    )
    assert hidden.status_code == 404  # another workspace's message is not there
    viewer = await api.add_member(owner, ws, "viewer")
    assert (await client.patch(url, json={"text": "x"}, headers=viewer.headers)).status_code == 403
