"""Which flow an inbound message starts: every trigger of every bot on the channel is tried;
when several match, the highest `priority` wins, then the more specific kind (a button
payload over a keyword over a regex over an intent over a new conversation over any
message), then the older bot, then the trigger listed first."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from botplatform.bot.engine import Inbound
from botplatform.bot.flow import Flow

SPECIFICITY = {
    "payload": 5,
    "keyword": 4,
    "regex": 3,
    "intent": 2,
    "new_conversation": 1,
    "any_message": 0,
}
REGEX_INPUT_LIMIT = 1000  # a customer's message is cut before matching: bounded work


class IntentLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def confidence(self) -> float: ...


Intents = Callable[[str], Awaitable[IntentLike | None]]


@dataclass(frozen=True)
class Candidate:
    bot_id: str
    version_id: str
    flow: Flow
    order: int  # the bots' creation order


@dataclass(frozen=True)
class Hit:
    candidate: Candidate
    trigger: dict[str, Any]
    node_id: str


def _normalize(text: str) -> str:
    return " ".join(text.casefold().split())


def _keyword(trigger: dict[str, Any], said: str) -> bool:
    text = _normalize(said)
    words = [_normalize(w) for w in trigger.get("keywords", [])]
    how = trigger.get("match", "exact")
    if how == "contains":
        return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text) for w in words)
    if how == "starts_with":
        return any(text.startswith(w) for w in words)
    return text in words


def _plain_match(trigger: dict[str, Any], inbound: Inbound) -> bool:
    kind = trigger["type"]
    if kind == "any_message":
        return True
    if kind == "new_conversation":
        return inbound.new_conversation
    if kind == "payload":
        return inbound.payload is not None and inbound.payload in trigger.get("payloads", [])
    if kind == "keyword":
        return bool(inbound.said) and _keyword(trigger, inbound.said)
    if kind == "regex":
        flags = re.IGNORECASE
        return re.search(trigger["pattern"], inbound.said[:REGEX_INPUT_LIMIT], flags) is not None
    return False


async def select(
    candidates: list[Candidate],
    inbound: Inbound,
    intents: Intents,
    *,
    interrupting_only: bool = False,
) -> Hit | None:
    """The trigger this message fires, if any. Intents are detected once, and only when an
    intent trigger could win."""
    ranked = sorted(
        (
            (-int(t.get("priority", 0)), -SPECIFICITY[t["type"]], c.order, index, c, t)
            for c in candidates
            for index, t in enumerate(c.flow.triggers)
            if not interrupting_only or t.get("interrupt")
        ),
        key=lambda item: item[:4],
    )
    detected: list[IntentLike | None] = []
    for *_, candidate, trigger in ranked:
        if trigger["type"] == "intent":
            if not inbound.said:
                continue
            if not detected:
                detected.append(await intents(inbound.said))
            intent = detected[0]
            if intent is None or intent.name != trigger.get("intent"):
                continue
            if intent.confidence < float(trigger.get("min_confidence", 0.6)):
                continue
        elif not _plain_match(trigger, inbound):
            continue
        return Hit(candidate, trigger, str(trigger["node"]))
    return None
