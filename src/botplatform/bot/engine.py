"""The flow engine: walks a flow's nodes for one conversation, channel-agnostic.

It reads and changes a `State` (where the run stands, its variables) and acts only through
`Effects`: the channel path queues real messages through the policy gate, the simulator
collects them. Nodes that wait — for an answer, a delay, or an outside call (HTTP, AI) made
by a job outside the database transaction — stop the walk; `answer` and `resume` go on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from botplatform.bot.answers import InvalidAnswer, validate_answer
from botplatform.bot.conditions import evaluate_all
from botplatform.bot.flow import Flow
from botplatform.bot.interpolate import dig, render, render_json
from botplatform.bot.nodes import options
from botplatform.message.schemas import MessageBody

MAX_STEPS = 100  # nodes walked for one input: a loop in the graph ends here, not forever
DEFAULT_RETRY = "Sorry, I didn't get that."
EXTERNAL = frozenset({"http_request", "ai_answer"})


@dataclass
class State:
    """Where a conversation's run stands. Persisted as a `BotSession` row (or, in the
    simulator, handed back to the caller)."""

    status: str = "idle"  # idle | running | finished | handoff
    bot_id: str | None = None
    version_id: str | None = None
    node_id: str | None = None
    waiting: str | None = None  # input | delay | external
    variables: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    step: int = 0
    resume_at: datetime | None = None
    last_input: str | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Inbound:
    """One customer message, as the engine sees it."""

    text: str | None = None
    payload: str | None = None  # the id of the button or list row replied to
    title: str | None = None
    new_conversation: bool = False

    @property
    def said(self) -> str:
        return (self.text or self.title or "").strip()


@dataclass
class Contact:
    name: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What an outside call (HTTP request, AI answer) came back with."""

    port: str
    variables: dict[str, Any] = field(default_factory=dict)
    reply: str | None = None
    error: str | None = None


class Effects(Protocol):
    #: Channel path: outside calls run in a job, after the transaction; simulator: inline.
    defer_external: bool

    async def send(self, body: MessageBody) -> None: ...

    async def set_attribute(self, name: str, value: Any) -> None: ...

    async def handoff(self, node: dict[str, Any]) -> None: ...

    async def wait(self, state: State, kind: str, seconds: int = 0) -> None:
        """A delay (`seconds`) or an outside call begins: the channel path queues its job."""
        ...

    async def call(self, node: dict[str, Any], scope: dict[str, Any]) -> Outcome: ...

    def error(self, code: str, message: str) -> None: ...


def scope_of(contact: Contact, state: State) -> dict[str, Any]:
    """What placeholders see: {{contact.*}}, {{vars.*}}, {{input.text}}."""
    values = {**contact.attributes, "name": contact.name}
    return {"contact": values, "vars": state.variables, "input": {"text": state.last_input}}


class Engine:
    def __init__(
        self, flow: Flow, contact: Contact, effects: Effects, now: Callable[[], datetime]
    ) -> None:
        self.flow = flow
        self.contact = contact
        self.effects = effects
        self.now = now

    # -- scope and messages -------------------------------------------------------------

    def scope(self, state: State) -> dict[str, Any]:
        return scope_of(self.contact, state)

    def _render(self, state: State, text: Any) -> str:
        return render(str(text), self.scope(state)) if text is not None else ""

    async def _send(self, state: State, body: dict[str, Any]) -> None:
        if isinstance(body.get("text"), str):
            body["text"] = body["text"][:4096] or " "
        try:
            message = MessageBody.model_validate(body)
        except ValidationError as exc:  # e.g. a placeholder rendered an empty button title
            state.last_error = f"message_invalid: {exc.errors()[0]['msg']}"
            self.effects.error("message_invalid", state.last_error)
            return
        await self.effects.send(message)

    def _question(self, state: State, node: dict[str, Any]) -> dict[str, Any]:
        """The message a waiting node sends: buttons, a list, or a (choice) question."""
        kind = node["type"]
        if kind == "send_buttons":
            return {
                "type": "interactive",
                "text": self._render(state, node["text"]),
                "buttons": [
                    {"id": b["id"], "title": self._render(state, b["title"])[:20]}
                    for b in node["buttons"]
                ],
                "header": node.get("header"),
                "footer": node.get("footer"),
            }
        if kind == "send_list":
            return {
                "type": "interactive",
                "text": self._render(state, node["text"]),
                "list_button": node["button"],
                "sections": node["sections"],
                "header": node.get("header"),
                "footer": node.get("footer"),
            }
        text = self._render(state, node["question"])
        choices = node.get("choices") or []
        if node.get("validation") == "choice" and all(len(c) <= 20 for c in choices):
            if len(choices) <= 3:
                return {
                    "type": "interactive",
                    "text": text,
                    "buttons": [{"id": c, "title": c} for c in choices],
                }
            if len(choices) <= 10:
                rows = [{"id": c, "title": c} for c in choices]
                return {
                    "type": "interactive",
                    "text": text,
                    "list_button": "Choose",
                    "sections": [{"title": "", "rows": rows}],
                }
        if choices:
            text += "\n\n" + "\n".join(f"{i}. {c}" for i, c in enumerate(choices, start=1))
        return {"type": "text", "text": text}

    # -- running ------------------------------------------------------------------------

    async def start(self, state: State, node_id: str, inbound: Inbound) -> None:
        state.status, state.variables, state.attempts = "running", {}, 0
        state.waiting, state.resume_at, state.last_error = None, None, None
        state.last_input = inbound.said or None
        await self._walk(state, node_id)

    async def answer(self, state: State, inbound: Inbound) -> None:
        """The customer's reply to the node the run waits on."""
        node = self.flow.nodes[str(state.node_id)]
        state.last_input = inbound.said or None
        port = await self._accept(state, node, inbound)
        if port is not None:
            state.waiting, state.attempts = None, 0
            await self._walk(state, self.flow.follow(node["id"], port))
            return
        state.attempts += 1
        if state.attempts >= int(node.get("max_attempts", 3)):
            state.waiting, state.attempts = None, 0
            await self._walk(state, self.flow.follow(node["id"], "invalid"))
            return
        retry = self._render(state, node.get("retry_message") or DEFAULT_RETRY)
        await self._send(state, {"type": "text", "text": retry})
        await self._send(state, self._question(state, node))

    async def resume(self, state: State, outcome: Outcome | None = None) -> None:
        """Goes on after a delay (no outcome) or an outside call."""
        node_id = str(state.node_id)
        state.waiting, state.resume_at = None, None
        port = "next"
        if outcome is not None:
            port = await self._apply(state, outcome)
        await self._walk(state, self.flow.follow(node_id, port))

    async def call(self, state: State) -> Outcome:
        """Makes the outside call of the node the run waits on (in a job, or inline)."""
        return await self.effects.call(self.flow.nodes[str(state.node_id)], self.scope(state))

    async def _apply(self, state: State, outcome: Outcome) -> str:
        state.variables.update(outcome.variables)
        if outcome.error:
            state.last_error = outcome.error
        port = outcome.port
        if port == "fallback" and self.flow.follow(str(state.node_id), port) is None:
            port = "next"  # no fallback branch: the fallback message is the answer
        if outcome.reply and port != "fallback":
            await self._send(state, {"type": "text", "text": outcome.reply})
        return port

    async def _walk(self, state: State, node_id: str | None) -> None:
        for _ in range(MAX_STEPS):
            if node_id is None:
                self._finish(state)
                return
            node = self.flow.nodes[node_id]
            state.node_id, state.step = node_id, state.step + 1
            port = await self._execute(state, node)
            if port is None:
                return
            node_id = self.flow.follow(node_id, port)
        state.last_error = f"stopped after {MAX_STEPS} steps without waiting (a loop?)"
        self.effects.error("too_many_steps", state.last_error)
        self._finish(state)

    def _finish(self, state: State) -> None:
        state.status, state.waiting, state.node_id, state.resume_at = "finished", None, None, None

    async def _execute(self, state: State, node: dict[str, Any]) -> str | None:
        """Runs one node; the port to leave by, or None when the run stops or waits here."""
        handler = HANDLERS[node["type"]]
        return await handler(self, state, node)

    # -- nodes ----------------------------------------------------------------------------

    async def _send_text(self, state: State, node: dict[str, Any]) -> str | None:
        text = self._render(state, node["text"])
        await self._send(
            state, {"type": "text", "text": text, "preview_url": bool(node.get("preview_url"))}
        )
        return "next"

    async def _send_media(self, state: State, node: dict[str, Any]) -> str | None:
        media = {
            "link": self._render(state, node["url"]) if node.get("url") else None,
            "id": node.get("media_id"),
            "caption": self._render(state, node["caption"]) if node.get("caption") else None,
            "filename": node.get("filename"),
        }
        media = {k: v for k, v in media.items() if v is not None}
        await self._send(state, {"type": node["media_type"], "media": media})
        return "next"

    async def _send_template(self, state: State, node: dict[str, Any]) -> str | None:
        components = render_json(node.get("components", []), self.scope(state))
        template = {"name": node["name"], "language": node["language"], "components": components}
        await self._send(state, {"type": "template", "template": template})
        return "next"

    async def _wait_for_input(self, state: State, node: dict[str, Any]) -> str | None:
        await self._send(state, self._question(state, node))
        state.waiting, state.attempts = "input", 0
        return None

    async def _condition(self, state: State, node: dict[str, Any]) -> str | None:
        def lookup(kind: str, name: str) -> Any:
            if kind == "attribute":
                if name == "name":
                    return self.contact.name
                return self.contact.attributes.get(name)
            return dig(state.variables, name.split("."))

        matched = evaluate_all(
            node["rules"],
            node.get("match", "all"),
            lookup,
            lambda text: self._render(state, text),
            self.now(),
        )
        return "true" if matched else "false"

    async def _set_variable(self, state: State, node: dict[str, Any]) -> str | None:
        value = node["value"]
        state.variables[node["name"]] = render_json(value, self.scope(state))
        return "next"

    async def _external(self, state: State, node: dict[str, Any]) -> str | None:
        if self.effects.defer_external:
            state.waiting = "external"
            await self.effects.wait(state, "external")
            return None
        return await self._apply(state, await self.call(state))

    async def _delay(self, state: State, node: dict[str, Any]) -> str | None:
        seconds = int(node["seconds"])
        state.waiting, state.resume_at = "delay", self.now() + timedelta(seconds=seconds)
        await self.effects.wait(state, "delay", seconds)
        return None

    async def _handoff(self, state: State, node: dict[str, Any]) -> str | None:
        if node.get("message"):
            await self._send(state, {"type": "text", "text": self._render(state, node["message"])})
        note = self._render(state, node["note"]) if node.get("note") else None
        await self.effects.handoff({**node, "note": note})
        state.status, state.waiting, state.node_id = "handoff", None, None
        return None

    async def _end(self, state: State, node: dict[str, Any]) -> str | None:
        if node.get("message"):
            await self._send(state, {"type": "text", "text": self._render(state, node["message"])})
        self._finish(state)
        return None

    # -- answers --------------------------------------------------------------------------

    async def _accept(self, state: State, node: dict[str, Any], inbound: Inbound) -> str | None:
        """The port a valid answer leaves by (after storing it), or None when invalid."""
        if node["type"] == "ask":
            return await self._accept_question(state, node, inbound)
        offered = options(node)
        chosen = _pick(offered, inbound)
        if chosen is None:
            return "other" if self.flow.follow(node["id"], "other") else None
        if node.get("save_as"):
            state.variables[node["save_as"]] = chosen["id"]
        return str(chosen["id"])

    async def _accept_question(
        self, state: State, node: dict[str, Any], inbound: Inbound
    ) -> str | None:
        kind = node.get("validation", "text")
        given = inbound.payload if kind == "choice" and inbound.payload else inbound.said
        try:
            value = validate_answer(kind, given, node.get("choices"))
        except InvalidAnswer:
            return None
        if node["attribute"] == "name":  # the contact's own name, not an attribute
            self.contact.name = str(value)[:200]
        else:
            self.contact.attributes[node["attribute"]] = value
        await self.effects.set_attribute(node["attribute"], value)
        return "next"


def _pick(offered: list[dict[str, Any]], inbound: Inbound) -> dict[str, Any] | None:
    """A button or row by its payload id, its title, or its number ("2")."""
    for option in offered:
        if inbound.payload is not None and str(option.get("id")) == inbound.payload:
            return option
    said = inbound.said.casefold()
    for option in offered:
        if said and str(option.get("title", "")).casefold() == said:
            return option
    if said.isdigit() and 1 <= int(said) <= len(offered):
        return offered[int(said) - 1]
    return None


Handler = Callable[[Engine, State, dict[str, Any]], Awaitable[str | None]]
HANDLERS: dict[str, Handler] = {
    "send_text": Engine._send_text,
    "send_media": Engine._send_media,
    "send_buttons": Engine._wait_for_input,
    "send_list": Engine._wait_for_input,
    "send_template": Engine._send_template,
    "ask": Engine._wait_for_input,
    "condition": Engine._condition,
    "set_variable": Engine._set_variable,
    "http_request": Engine._external,
    "ai_answer": Engine._external,
    "delay": Engine._delay,
    "handoff": Engine._handoff,
    "end": Engine._end,
}
