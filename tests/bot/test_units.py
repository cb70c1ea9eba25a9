"""The engine's small parts without a database: answers, placeholders, degrading, triggers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from botplatform.bot.answers import InvalidAnswer, validate_answer
from botplatform.bot.engine import Inbound
from botplatform.bot.flow import Flow
from botplatform.bot.interpolate import render, render_json
from botplatform.bot.triggers import Candidate, select
from botplatform.channels.degrade import degrade
from botplatform.channels.messages import Capability
from botplatform.channels.registry import ADAPTERS, capabilities_of
from botplatform.message.schemas import MessageBody


@pytest.mark.parametrize(
    ("kind", "given", "stored"),
    [
        ("email", " Ann@Example.COM ", "ann@example.com"),
        ("number", "42", 42),
        ("number", "3,5", 3.5),
        ("number", "-0.25", -0.25),
        ("phone", "+49 (30) 1234-5678", "+493012345678"),
        ("phone", "0049 30 1234567", "+49301234567"),
        ("date", "2026-03-01", "2026-03-01"),
        ("date", "01/03/2026", "2026-03-01"),
        ("date", "1 March 2026", "2026-03-01"),
        ("text", "anything at all", "anything at all"),
    ],
)
def test_valid_answers_are_normalized(kind: str, given: str, stored: object) -> None:
    assert validate_answer(kind, given) == stored


@pytest.mark.parametrize(
    ("kind", "given"),
    [
        ("email", "ann@"),
        ("email", "not an email"),
        ("number", "forty"),
        ("number", "nan"),
        ("phone", "12"),
        ("phone", "call me"),
        ("date", "31/02/2026"),
        ("date", "tomorrow"),
        ("text", "   "),
        ("choice", "purple"),
        ("choice", "4"),
    ],
)
def test_invalid_answers(kind: str, given: str) -> None:
    with pytest.raises(InvalidAnswer):
        validate_answer(kind, given, ["Red", "Green", "Blue"])


def test_choices_by_title_or_number() -> None:
    assert validate_answer("choice", "green", ["Red", "Green"]) == "Green"
    assert validate_answer("choice", "1", ["Red", "Green"]) == "Red"


def test_placeholders() -> None:
    scope = {
        "contact": {"name": "Ann", "city": "Berlin"},
        "vars": {"order": {"items": [{"sku": "A1"}], "paid": True}, "n": 3},
        "input": {"text": "hello"},
    }
    assert render("Hi {{contact.name}} from {{ contact.city }}!", scope) == "Hi Ann from Berlin!"
    assert render("{{vars.order.items.0.sku}} {{vars.order.paid}} {{vars.n}}", scope) == "A1 true 3"
    assert render("{{vars.missing.deep}}|{{input.text}}|{{other.x}}", scope) == "|hello|{{other.x}}"
    assert render_json({"a": ["{{vars.n}}", 1]}, scope) == {"a": ["3", 1]}


def test_every_adapter_declares_its_capabilities_and_degrading() -> None:
    shows = {Capability.BUTTONS, Capability.LISTS, Capability.MEDIA, Capability.TEMPLATES}
    assert capabilities_of("whatsapp") == shows  # every kind of message; no typing, no edits
    assert {Capability.TYPING, Capability.EDITS} <= capabilities_of("telegram")
    assert Capability.EDITS in capabilities_of("slack")
    assert Capability.TYPING not in capabilities_of("slack")  # Slack has none for apps
    assert Capability.BUTTONS in capabilities_of("webchat")  # the widget draws them
    assert Capability.BUTTONS in capabilities_of("telegram")  # inline keyboards
    for adapter in ADAPTERS.values():
        assert isinstance(adapter.capabilities, frozenset)
    buttons = MessageBody(
        type="interactive",
        text="Pick",
        header="Menu",
        buttons=[{"id": "a", "title": "Apples"}, {"id": "b", "title": "Pears"}],  # type: ignore[list-item]
    )
    assert degrade(buttons, frozenset(Capability)) is buttons
    text = degrade(buttons, frozenset({Capability.LISTS}))
    assert text.type == "text"
    assert text.text is not None and "Menu\nPick\n\n1. Apples\n2. Pears" in text.text


@dataclass(frozen=True)
class _Intent:
    name: str
    confidence: float


async def test_trigger_ranking_and_lazy_intents() -> None:
    def flow(*triggers: dict[str, object]) -> Flow:
        return Flow.load({"triggers": list(triggers), "nodes": [], "edges": []})

    older = Candidate("bot-1", "v1", flow({"type": "any_message", "node": "a"}), 0)
    newer = Candidate(
        "bot-2",
        "v9",
        flow(
            {"type": "any_message", "node": "b"},
            {"type": "intent", "intent": "buy", "min_confidence": 0.7, "node": "c"},
        ),
        1,
    )
    asked: list[str] = []

    async def intents(text: str) -> _Intent | None:
        asked.append(text)
        return _Intent("buy", 0.8 if "really" in text else 0.5)

    hit = await select([older, newer], Inbound(text="I really want it"), intents)
    assert hit is not None and (hit.candidate.bot_id, hit.node_id) == ("bot-2", "c")
    hit = await select([older, newer], Inbound(text="maybe"), intents)
    assert hit is not None and (hit.candidate.bot_id, hit.node_id) == ("bot-1", "a")
    assert asked == ["I really want it", "maybe"]  # once per message
    asked.clear()
    plain = Candidate("bot-3", "v1", flow({"type": "keyword", "keywords": ["x"], "node": "k"}), 2)
    assert await select([plain], Inbound(text="x"), intents) is not None
    assert asked == []  # no intent trigger: no detection
