"""Every node type and trigger through the simulator (the engine with nothing sent)."""

from __future__ import annotations

from typing import Any

from tests.bot.flows import edge, one_node, support_flow
from tests.bot.helpers import create_bot, kinds, sent, simulate, texts
from tests.conftest import Account, Api


async def _bot(api: Api, flow: dict[str, Any]) -> tuple[Account, str, str]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    bot = await create_bot(api, owner, ws, flow)
    return owner, ws, bot["id"]


async def test_buttons_question_validation_and_handoff(api: Api) -> None:
    owner, ws, bot = await _bot(api, support_flow())
    contact = {"name": "Dana", "attributes": {}}
    first = await simulate(api, owner, ws, bot, "Hi", contact=contact)
    (menu,) = sent(first)
    assert menu["type"] == "interactive"
    assert menu["text"] == "Hi Dana! What do you need?"
    assert [b["id"] for b in menu["buttons"]] == ["sales", "support"]
    assert first["state"]["status"] == "running" and first["state"]["node_id"] == "menu"
    assert first["state"]["waiting"] == "input"

    second = await simulate(
        api,
        owner,
        ws,
        bot,
        {"payload": "sales"},
        "not an email",
        "dana@example.com",
        "hello?",
        state=first["state"],
        contact=contact,
    )
    assert texts(second) == [
        "Your email, please?",
        "Sorry, I didn't get that.",
        "Your email, please?",
        "Thanks! An agent will write to dana@example.com shortly.",
    ]
    attribute = next(e for e in second["events"] if e["kind"] == "attribute")
    assert attribute["data"] == {"name": "email", "value": "dana@example.com"}
    assert second["contact"]["attributes"] == {"email": "dana@example.com"}
    assert kinds(second)[-3:] == ["handoff", "input", "paused"]
    assert second["state"]["status"] == "handoff"
    assert second["state"]["variables"] == {"topic": "sales"}


async def test_reprompt_limit_follows_the_invalid_port(api: Api) -> None:
    owner, ws, bot = await _bot(api, support_flow())
    result = await simulate(api, owner, ws, bot, "hello", "Sales", "nope", "still nope")
    assert texts(result)[-1] == "Let's try again later."
    assert result["state"]["status"] == "finished"
    assert result["contact"]["attributes"] == {}


async def test_buttons_become_numbered_text_where_the_channel_has_none(api: Api) -> None:
    owner, ws, bot = await _bot(api, support_flow())
    result = await simulate(api, owner, ws, bot, "hi", "2", capabilities=["media"])
    menu, bye = sent(result)
    assert menu["type"] == "text" and "buttons" not in menu
    assert "1. Sales\n2. Support" in menu["text"]
    assert bye["text"] == "See our help center."  # "2" picked the second button


async def test_send_nodes_media_list_template(api: Api) -> None:
    flow = {
        "triggers": [{"type": "any_message", "node": "photo"}],
        "nodes": [
            {
                "id": "photo",
                "type": "send_media",
                "media_type": "image",
                "url": "https://example.com/{{contact.sku}}.jpg",
                "caption": "Item {{contact.sku}}",
            },
            {
                "id": "tpl",
                "type": "send_template",
                "name": "order_update",
                "language": "en_US",
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": "{{contact.name}}"}]}
                ],
            },
            {
                "id": "menu",
                "type": "send_list",
                "text": "Pick a size",
                "button": "Sizes",
                "sections": [
                    {
                        "title": "Sizes",
                        "rows": [{"id": "s", "title": "Small"}, {"id": "l", "title": "Large"}],
                    }
                ],
                "save_as": "size",
            },
            {"id": "done", "type": "end", "message": "Size {{vars.size}} it is."},
        ],
        "edges": [edge("photo", "tpl"), edge("tpl", "menu"), edge("menu", "done", "l")],
    }
    owner, ws, bot = await _bot(api, flow)
    contact = {"name": "Ann", "attributes": {"sku": "A1"}}
    result = await simulate(api, owner, ws, bot, "x", "large", contact=contact)
    photo, template, menu, done = sent(result)
    assert photo == {
        "type": "image",
        "media": {"link": "https://example.com/A1.jpg", "caption": "Item A1"},
    }
    assert template["template"]["components"][0]["parameters"][0]["text"] == "Ann"
    assert menu["list_button"] == "Sizes" and len(menu["sections"][0]["rows"]) == 2
    assert done["text"] == "Size l it is."  # chosen by title, case-insensitively
    text_only = await simulate(api, owner, ws, bot, "x", capabilities=[], contact=contact)
    photo_as_text, _, list_as_text = sent(text_only)
    assert photo_as_text["text"] == "Item A1\nhttps://example.com/A1.jpg"
    assert "1. Small\n2. Large" in list_as_text["text"]


def _condition_flow(rules: list[dict[str, Any]], match: str = "all") -> dict[str, Any]:
    return {
        "triggers": [{"type": "any_message", "node": "set"}],
        "nodes": [
            {
                "id": "set",
                "type": "set_variable",
                "name": "order",
                "value": {"id": "{{input.text}}"},
            },
            {"id": "check", "type": "condition", "rules": rules, "match": match},
            {"id": "yes", "type": "end", "message": "yes {{vars.order.id}}"},
            {"id": "no", "type": "end", "message": "no"},
        ],
        "edges": [edge("set", "check"), edge("check", "yes", "true"), edge("check", "no", "false")],
    }


async def _decide(api: Api, rules: list[dict[str, Any]], text: str = "42", **extra: Any) -> str:
    owner, ws, bot = await _bot(api, _condition_flow(rules, extra.pop("match", "all")))
    contact = {"name": "Ann", "attributes": {"city": "Berlin", "orders": 3}}
    return texts(await simulate(api, owner, ws, bot, text, contact=contact, **extra))[-1]


async def test_condition_on_attributes_and_variables(api: Api) -> None:
    city = {"kind": "attribute", "name": "city", "op": "equals", "value": "berlin"}
    many = {"kind": "attribute", "name": "orders", "op": "gte", "value": "3"}
    missing = {"kind": "attribute", "name": "email", "op": "exists"}
    order = {"kind": "variable", "name": "order.id", "op": "matches", "value": "^\\d+$"}
    assert await _decide(api, [city, many, order]) == "yes 42"
    assert await _decide(api, [city, missing]) == "no"
    assert await _decide(api, [city, missing], match="any") == "yes 42"
    assert await _decide(api, [order], text="abc") == "no"


async def test_condition_on_time_of_day_and_business_hours(api: Api) -> None:
    night = {"kind": "time_of_day", "from": "22:00", "to": "06:00", "timezone": "Europe/Berlin"}
    hours = {
        "kind": "business_hours",
        "timezone": "America/New_York",
        "hours": {"mon": ["09:00", "17:00"], "tue": ["09:00", "17:00"]},
    }
    # Monday 2026-11-23 23:30 in Berlin (22:30 UTC) is night there, 17:30 in New York: closed.
    late = "2026-11-23T22:30:00Z"
    assert await _decide(api, [night], now=late) == "yes 42"
    assert await _decide(api, [hours], now=late) == "no"
    # 15:00 UTC: 16:00 in Berlin (day), 10:00 in New York on a Monday (open).
    assert await _decide(api, [night], now="2026-11-23T15:00:00Z") == "no"
    assert await _decide(api, [hours], now="2026-11-23T15:00:00Z") == "yes 42"
    assert await _decide(api, [hours], now="2026-11-25T15:00:00Z") == "no"  # Wednesday


async def test_delay_is_reported_then_the_run_goes_on(api: Api) -> None:
    flow = {
        "triggers": [{"type": "any_message", "node": "wait"}],
        "nodes": [
            {"id": "wait", "type": "delay", "seconds": 3600},
            {"id": "later", "type": "send_text", "text": "An hour later"},
        ],
        "edges": [edge("wait", "later")],
    }
    owner, ws, bot = await _bot(api, flow)
    result = await simulate(api, owner, ws, bot, "go")
    delay = next(e for e in result["events"] if e["kind"] == "delay")
    assert delay["data"] == {"node": "wait", "seconds": 3600}
    assert texts(result) == ["An hour later"]
    assert result["state"]["status"] == "finished"


async def test_triggers_and_priority(api: Api) -> None:
    flow = {
        "triggers": [
            {"type": "any_message", "node": "fallback"},
            {"type": "regex", "pattern": "order\\s*#?\\d+", "node": "order"},
            {"type": "keyword", "keywords": ["order"], "match": "contains", "node": "generic"},
            {"type": "payload", "payloads": ["promo"], "node": "promo"},
            {"type": "new_conversation", "node": "welcome"},
            {"type": "keyword", "keywords": ["vip"], "node": "vip", "priority": 10},
        ],
        "nodes": [
            {"id": n, "type": "end", "message": n}
            for n in ("fallback", "order", "generic", "promo", "welcome", "vip")
        ],
        "edges": [],
    }
    owner, ws, bot = await _bot(api, flow)

    async def first(*messages: Any, new: bool = False) -> str:
        result = await simulate(api, owner, ws, bot, *messages, new_conversation=new)
        return texts(result)[0]

    assert await first("hello", new=True) == "welcome"  # new conversation beats any message
    assert await first("hello") == "fallback"
    assert await first("my order #123 is late") == "generic"  # keyword beats regex
    assert await first("ORDER 77") == "generic"
    assert await first("where is 12345, order?") == "generic"
    assert await first({"payload": "promo", "text": "Promo"}) == "promo"
    assert await first("vip", new=True) == "vip"  # explicit priority beats everything


async def test_no_trigger_matches(api: Api) -> None:
    flow = one_node(
        {"id": "a", "type": "send_text", "text": "x"},
        trigger={"type": "keyword", "keywords": ["start"], "node": "a"},
    )
    owner, ws, bot = await _bot(api, flow)
    result = await simulate(api, owner, ws, bot, "something else")
    assert kinds(result) == ["input", "no_match"]
    assert result["state"]["status"] == "idle"


async def test_loops_stop(api: Api) -> None:
    flow = {
        "triggers": [{"type": "any_message", "node": "a"}],
        "nodes": [
            {"id": "a", "type": "set_variable", "name": "x", "value": 1},
            {"id": "b", "type": "set_variable", "name": "y", "value": 2},
        ],
        "edges": [edge("a", "b"), edge("b", "a")],
    }
    owner, ws, bot = await _bot(api, flow)
    result = await simulate(api, owner, ws, bot, "go")
    assert [e["data"]["code"] for e in result["events"] if e["kind"] == "error"] == [
        "too_many_steps"
    ]
    assert result["state"]["status"] == "finished"


async def test_simulating_a_version_or_a_broken_draft(api: Api) -> None:
    owner, ws, bot = await _bot(api, support_flow())
    url = f"/api/v1/workspaces/{ws}/bots/{bot}/simulate"
    unpublished = await api.http.post(
        url, json={"messages": [{"text": "hi"}], "version": "published"}, headers=owner.headers
    )
    assert unpublished.status_code == 422
    assert unpublished.json()["error"]["code"] == "not_published"
    missing = await api.http.post(
        url, json={"messages": [{"text": "hi"}], "version": 3}, headers=owner.headers
    )
    assert missing.status_code == 404
    empty = await api.http.post(url, json={"messages": [{}]}, headers=owner.headers)
    assert empty.status_code == 422


async def test_ask_kinds_store_normalized_answers(api: Api) -> None:
    flow = {
        "triggers": [{"type": "any_message", "node": "colour"}],
        "nodes": [
            {
                "id": "colour",
                "type": "ask",
                "question": "Which colour?",
                "attribute": "colour",
                "validation": "choice",
                "choices": ["Red", "Green", "Blue"],
            },
            {
                "id": "size",
                "type": "ask",
                "question": "How many?",
                "attribute": "quantity",
                "validation": "number",
            },
            {
                "id": "phone",
                "type": "ask",
                "question": "Phone?",
                "attribute": "phone",
                "validation": "phone",
            },
            {
                "id": "when",
                "type": "ask",
                "question": "Delivery date?",
                "attribute": "delivery",
                "validation": "date",
                "retry_message": "A date like 2026-12-24, {{contact.name}}.",
            },
            {"id": "name", "type": "ask", "question": "Your name?", "attribute": "name"},
            {
                "id": "done",
                "type": "end",
                "message": "{{contact.name}}: {{contact.quantity}} {{contact.colour}}",
            },
        ],
        "edges": [
            edge("colour", "size"),
            edge("size", "phone"),
            edge("phone", "when"),
            edge("when", "name"),
            edge("name", "done"),
        ],
    }
    owner, ws, bot = await _bot(api, flow)
    result = await simulate(
        api,
        owner,
        ws,
        bot,
        "start",
        {"payload": "Green"},
        "3",
        "+1 555 010 9999",
        "soon",
        "24/12/2026",
        "Ann Lee",
    )
    colour = sent(result)[0]
    assert [b["id"] for b in colour["buttons"]] == ["Red", "Green", "Blue"]
    assert "A date like 2026-12-24, Test Customer." in texts(result)
    assert result["contact"] == {
        "name": "Ann Lee",
        "attributes": {
            "colour": "Green",
            "quantity": 3,
            "phone": "+15550109999",
            "delivery": "2026-12-24",
        },
    }
    assert texts(result)[-1] == "Ann Lee: 3 Green"


async def test_an_interrupting_trigger_restarts_a_waiting_run(api: Api) -> None:
    flow = support_flow()
    flow["triggers"].append(
        {"type": "keyword", "keywords": ["menu"], "node": "menu", "interrupt": True}
    )
    owner, ws, bot = await _bot(api, flow)
    result = await simulate(api, owner, ws, bot, "hi", "Sales", "menu", "hi")
    kinds_sent = [m["type"] for m in sent(result)]
    assert kinds_sent == ["interactive", "text", "interactive", "text", "interactive"]
    # "menu" interrupted the question; "hi" (no interrupt) was then a wrong answer to the
    # buttons: the retry message and the buttons again
    assert texts(result)[-2] == "Sorry, I didn't get that."
    assert result["state"]["node_id"] == "menu" and result["state"]["attempts"] == 1


async def test_a_state_that_does_not_fit_is_refused(api: Api) -> None:
    owner, ws, bot = await _bot(api, support_flow())
    url = f"/api/v1/workspaces/{ws}/bots/{bot}/simulate"
    for state in (
        {"status": "running", "version_id": "draft", "node_id": "nowhere", "waiting": "input"},
        {"status": "running", "version_id": "draft", "node_id": "bye", "waiting": "input"},
        {"status": "running", "version_id": "draft", "node_id": "menu", "waiting": "external"},
        {"status": "running", "version_id": "other", "node_id": "menu", "waiting": "input"},
    ):
        response = await api.http.post(
            url, json={"messages": [{"text": "x"}], "state": state}, headers=owner.headers
        )
        assert response.status_code == 422, state
        assert response.json()["error"]["code"] == "state_invalid"
    weird = support_flow()
    weird["edges"][0]["port"] = ["sales"]
    response = await api.http.patch(
        f"/api/v1/workspaces/{ws}/bots/{bot}", json={"flow": weird}, headers=owner.headers
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["code"] == "invalid_edge"
