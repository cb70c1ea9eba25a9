"""Clear input errors: phone numbers are read the way people type them and a bad one is a
sentence, malformed JSON says where, a message without `type` is text only when it is plain
text, and every 422 names the field in plain words."""

from __future__ import annotations

import html
from typing import Any

import httpx
import pytest

from botplatform.bot.answers import InvalidAnswer, validate_answer
from botplatform.kit.phone import PHONE_HINT, normalize_phone
from tests.conftest import Account, Api, eventually
from tests.dashboard.helpers import browser_login, csrf_of

NUMBER = "+15551234567"


@pytest.mark.parametrize(
    "typed",
    [
        "+15551234567",
        "15551234567",
        "+1 555 123 4567",
        "+1 (555) 123-4567",
        "1.555.123.4567",
        "001 555 123 4567",
        "0015551234567",
        " +1-555-123-4567 ",
        "+1\u00a0555\u00a0123\u00a04567",
        "+1 [555] 123\u20134567",
    ],
)
def test_phone_numbers_are_normalised(typed: str) -> None:
    assert normalize_phone(typed) == NUMBER


@pytest.mark.parametrize(
    "typed", ["", "+", "12345", "5551234567890123", "555-CALL-NOW", "+1 555 12+3", "++15551234567"]
)
def test_a_bad_phone_number_gets_a_sentence(typed: str) -> None:
    with pytest.raises(ValueError, match=r"^Enter the number with its country code"):
        normalize_phone(typed)


def test_bot_answers_read_phone_numbers_the_same_way() -> None:
    assert validate_answer("phone", "001 (555) 123-4567") == NUMBER
    with pytest.raises(InvalidAnswer):
        validate_answer("phone", "555-CALL-NOW")


async def _workspace(api: Api) -> tuple[Account, str, dict[str, Any]]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws, display_phone_number="+1 (555) 000.1111")
    await api.inbound_text(channel["id"], NUMBER[1:], "Hello")  # opens the 24-hour window

    async def arrived() -> bool:
        listed = await api.http.get(f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers)
        return bool(listed.json()["data"]["items"])

    await eventually(arrived)
    return owner, ws, channel


def _problem(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


async def test_send_to_a_number_typed_any_usual_way(client: httpx.AsyncClient, api: Api) -> None:
    owner, ws, channel = await _workspace(api)
    assert channel["display_phone_number"] == "+15550001111"
    url = f"/api/v1/workspaces/{ws}/messages"
    conversations = set()
    for typed in ("+1 (555) 123-4567", "0015551234567", "1.555.123.4567"):
        sent = await client.post(
            url,
            json={"channel_id": channel["id"], "to": typed, "type": "text", "text": "Hi"},
            headers=owner.headers,
        )
        assert sent.status_code == 201, sent.text
        conversations.add(sent.json()["data"]["conversation_id"])
    assert len(conversations) == 1  # one contact, whichever way the number was typed
    contacts = await client.get(
        f"/api/v1/workspaces/{ws}/contacts",
        params={"search": "+1 555-123-4567"},
        headers=owner.headers,
    )
    (contact,) = contacts.json()["data"]["items"]
    found = await client.get(
        f"/api/v1/workspaces/{ws}/contacts/{contact['id']}", headers=owner.headers
    )
    assert [i["external_id"] for i in found.json()["data"]["identities"]] == ["15551234567"]


async def test_a_bad_number_is_a_sentence_not_a_regex(client: httpx.AsyncClient, api: Api) -> None:
    owner, ws, channel = await _workspace(api)
    refused = await client.post(
        f"/api/v1/workspaces/{ws}/messages",
        json={"channel_id": channel["id"], "to": "555-CALL-NOW", "type": "text", "text": "Hi"},
        headers=owner.headers,
    )
    error = _problem(refused)
    assert error["details"] == [{"field": "body.to", "message": PHONE_HINT, "type": "value_error"}]
    assert error["message"] == f"Invalid to: {PHONE_HINT}"
    assert "\\d" not in refused.text and "pattern" not in refused.text

    display = await client.patch(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}",
        json={"display_phone_number": "call us"},
        headers=owner.headers,
    )
    assert _problem(display)["details"][0]["message"] == PHONE_HINT
    cleared = await client.patch(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}",
        json={"display_phone_number": "0049 (30) 1234-5678"},
        headers=owner.headers,
    )
    assert cleared.json()["data"]["display_phone_number"] == "+493012345678"

    numeric = await client.post(
        f"/api/v1/workspaces/{ws}/channels",
        json={
            "name": "Other",
            "phone_number_id": "phone-1",
            "business_account_id": "1234567890",
            "access_token": "t",
            "app_secret": "s",
        },
        headers=owner.headers,
    )
    detail = _problem(numeric)["details"][0]
    assert detail["field"] == "body.phone_number_id"
    assert detail["message"].startswith("Enter the id as Meta's console shows it: digits only")


async def test_malformed_json_says_line_and_column(client: httpx.AsyncClient) -> None:
    body = b'{\n  "email": "a@example.com",\n  "password" "x"\n}'
    response = await client.post(
        "/api/v1/auth/login", content=body, headers={"content-type": "application/json"}
    )
    error = _problem(response, 400)
    assert error["code"] == "malformed_json"
    assert error["message"] == "Malformed JSON at line 3, column 14: Expecting ':' delimiter."
    assert error["details"] == [
        {
            "field": "body",
            "message": error["message"],
            "type": "json_invalid",
            "line": 3,
            "column": 14,
        }
    ]


async def test_message_type_may_be_left_out_for_plain_text_only(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner, ws, channel = await _workspace(api)
    send = f"/api/v1/workspaces/{ws}/messages"
    base = {"channel_id": channel["id"], "to": NUMBER}
    plain = await client.post(send, json={**base, "text": "Hi"}, headers=owner.headers)
    assert plain.status_code == 201, plain.text
    assert plain.json()["data"]["type"] == "text"
    conversation = plain.json()["data"]["conversation_id"]
    reply = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation}/messages",
        json={"text": "As the README does"},
        headers=owner.headers,
    )
    assert reply.status_code == 201, reply.text

    for body in (
        {**base, "media": {"link": "https://example.com/a.png"}},
        {**base, "text": "Pick one", "buttons": [{"id": "a", "title": "A"}]},
        {**base},
    ):
        refused = await client.post(send, json=body, headers=owner.headers)
        error = _problem(refused)
        assert error["details"][0]["field"] == "body.type", body
        assert error["details"][0]["message"] == "Required: this field is missing."
        assert error["message"].startswith("Invalid type: Required")


async def test_422_names_each_field_in_plain_words(client: httpx.AsyncClient, api: Api) -> None:
    owner, ws, _ = await _workspace(api)
    response = await client.post(
        f"/api/v1/workspaces/{ws}/messages",
        json={"channel_id": "not-a-uuid", "to": "12", "type": "fax"},
        headers=owner.headers,
    )
    error = _problem(response)
    fields = {d["field"]: d["message"] for d in error["details"]}
    assert set(fields) >= {"body.channel_id", "body.to", "body.type"}
    assert fields["body.to"] == PHONE_HINT
    assert not any(m.startswith("Value error") for m in fields.values())
    assert (
        error["message"].startswith("Invalid ") and "more problems: see details" in error["message"]
    )


async def test_the_dashboard_channel_form_reads_numbers_the_same_way(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    token = csrf_of((await client.get(f"/app/w/{ws}/channels/new")).text)
    form = {
        "name": "Sales",
        "phone_number_id": "1122334455667",
        "business_account_id": "1234567890987654321",
        "access_token": "EAAG-test-token-9876",
        "app_secret": "secret",
        "csrf_token": token,
    }
    bad = await client.post(
        f"/app/w/{ws}/channels", data={**form, "display_phone_number": "call us"}
    )
    assert bad.status_code == 422
    assert html.escape(PHONE_HINT) in bad.text and "Value error" not in bad.text
    good = await client.post(
        f"/app/w/{ws}/channels", data={**form, "display_phone_number": "+1 (555) 010-2030"}
    )
    assert good.status_code in (200, 303), good.text
    listed = await client.get(f"/api/v1/workspaces/{ws}/channels", headers=owner.headers)
    assert [c["display_phone_number"] for c in listed.json()["data"]["items"]] == ["+15550102030"]


async def test_an_unknown_kind_lists_the_known_ones(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    response = await client.post(
        f"/api/v1/workspaces/{ws}/automations",
        json={"name": "r", "event": "message.received", "actions": [{"type": "explode"}]},
        headers=owner.headers,
    )
    detail = _problem(response)["details"][0]
    assert detail["field"] == "body.actions.0"
    assert detail["message"].startswith("Unknown `type` 'explode'; expected one of: 'assign_agent'")
