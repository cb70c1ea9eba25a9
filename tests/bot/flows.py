"""Flows the bot tests share."""

from __future__ import annotations

from typing import Any


def edge(source: str, target: str, port: str = "next") -> dict[str, str]:
    return {"from": source, "to": target, "port": port}


def support_flow(keyword: str = "hi") -> dict[str, Any]:
    """ "hi" → buttons; "Sales" → ask the email → handoff; "Support" → end."""
    return {
        "triggers": [{"type": "keyword", "keywords": [keyword, "hello"], "node": "menu"}],
        "nodes": [
            {
                "id": "menu",
                "type": "send_buttons",
                "text": "Hi {{contact.name}}! What do you need?",
                "buttons": [
                    {"id": "sales", "title": "Sales"},
                    {"id": "support", "title": "Support"},
                ],
                "save_as": "topic",
            },
            {
                "id": "ask_email",
                "type": "ask",
                "question": "Your email, please?",
                "attribute": "email",
                "validation": "email",
                "max_attempts": 2,
            },
            {
                "id": "to_agent",
                "type": "handoff",
                "message": "Thanks! An agent will write to {{contact.email}} shortly.",
                "note": "Lead for {{vars.topic}}",
            },
            {"id": "bye", "type": "end", "message": "See our help center."},
            {"id": "gave_up", "type": "end", "message": "Let's try again later."},
        ],
        "edges": [
            edge("menu", "ask_email", "sales"),
            edge("menu", "bye", "support"),
            edge("ask_email", "to_agent"),
            edge("ask_email", "gave_up", "invalid"),
        ],
    }


def one_node(node: dict[str, Any], *, trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    """A flow that runs one node on any message."""
    return {
        "triggers": [trigger or {"type": "any_message", "node": node["id"]}],
        "nodes": [node],
        "edges": [],
    }
