"""Flows the editor tests share: every node and trigger type the engine knows, and the flow of
docs/api.md."""

from __future__ import annotations

from typing import Any

from tests.bot.flows import edge


def every_kind_flow() -> dict[str, Any]:
    """A valid flow with each node type, trigger type and condition rule kind, with the
    optional fields set (numbers where the forms show text), so a trip through the forms
    shows whether anything is lost or changed."""
    return {
        "triggers": [
            {"type": "keyword", "keywords": ["hi", "hello"], "match": "contains",
             "node": "menu", "priority": 5, "interrupt": True},
            {"type": "regex", "pattern": "^order \\d+$", "node": "check"},
            {"type": "any_message", "node": "ai"},
            {"type": "new_conversation", "node": "greet"},
            {"type": "payload", "payloads": ["restart", "menu"], "node": "menu"},
            {"type": "intent", "intent": "order_status", "min_confidence": 0.7, "node": "call"},
        ],
        "nodes": [
            {"id": "menu", "type": "send_buttons", "text": "Hi {{contact.name}}!\nPick one:",
             "buttons": [{"id": "sales", "title": "Sales"}, {"id": "shop", "title": "Shop"}],
             "header": "Acme", "footer": "Reply any time", "save_as": "topic",
             "retry_message": "Tap a button, please.", "max_attempts": 2,
             "label": "Main menu", "position": {"x": 10, "y": 20}},
            {"id": "ask_email", "type": "ask", "question": "Your email?", "attribute": "email",
             "validation": "email", "max_attempts": 2},
            {"id": "pick", "type": "ask", "question": "Which colour?", "attribute": "colour",
             "validation": "choice", "choices": ["red", "blue"],
             "retry_message": "red or blue?"},
            {"id": "catalog", "type": "send_list", "text": "Our shoes", "button": "Browse",
             "sections": [{"title": "Shoes", "rows": [
                 {"id": "boots", "title": "Boots", "description": "Warm"},
                 {"id": "sandals", "title": "Sandals"}]}]},
            {"id": "greet", "type": "send_text", "text": "Welcome!", "preview_url": True},
            {"id": "pic", "type": "send_media", "media_type": "image",
             "url": "https://example.com/a.png", "caption": "Our shop"},
            {"id": "tpl", "type": "send_template", "name": "order_update", "language": "en",
             "components": [{"type": "body", "parameters": [
                 {"type": "text", "text": "{{contact.name}}"}]}]},
            {"id": "check", "type": "condition", "match": "any", "rules": [
                {"kind": "attribute", "name": "email", "op": "exists"},
                {"kind": "variable", "name": "order.total", "op": "gt", "value": 10},
                {"kind": "variable", "name": "tier", "op": "in", "value": ["gold", "silver"]},
                {"kind": "time_of_day", "from": "22:00", "to": "06:00",
                 "timezone": "Europe/Berlin", "days": ["sat", "sun"]},
                {"kind": "business_hours", "timezone": "UTC",
                 "hours": {"mon": ["09:00", "17:00"], "sat": ["10:00", "14:00"]}}]},
            {"id": "setv", "type": "set_variable", "name": "count", "value": 3},
            {"id": "call", "type": "http_request", "method": "POST",
             "url": "https://api.example.com/orders/{{contact.id}}",
             "headers": {"X-Key": "abc"}, "body": {"id": "{{contact.id}}"},
             "timeout_seconds": 5, "save": {"order_id": "data.id"}},
            {"id": "ai", "type": "ai_answer", "question": "{{input.text}}",
             "instructions": "Be brief.", "save_as": "answer"},
            {"id": "wait", "type": "delay", "seconds": 60},
            {"id": "agent", "type": "handoff", "message": "An agent will write soon.",
             "note": "Lead for {{vars.topic}}"},
            {"id": "done", "type": "end", "message": "Bye!"},
        ],
        "edges": [
            edge("menu", "ask_email", "sales"), edge("menu", "catalog", "shop"),
            edge("menu", "agent", "invalid"), edge("ask_email", "pick"),
            edge("pick", "tpl"), edge("catalog", "pic", "boots"), edge("greet", "menu"),
            edge("tpl", "done"), edge("check", "setv", "true"), edge("check", "agent", "false"),
            edge("setv", "wait"), edge("call", "agent", "error"), edge("call", "done"),
            edge("ai", "agent", "fallback"), edge("wait", "done"),
            {"from": "pic", "to": "done"},
        ],
    }  # fmt: skip


def docs_flow() -> dict[str, Any]:
    """The flow of docs/api.md ("The flow graph")."""
    return {
        "triggers": [{"type": "keyword", "keywords": ["hi"], "node": "menu"}],
        "nodes": [
            {"id": "menu", "type": "send_buttons", "text": "Hi {{contact.name}}!",
             "buttons": [{"id": "sales", "title": "Sales"}]},
            {"id": "ask", "type": "ask", "question": "Your email?", "attribute": "email",
             "validation": "email"},
            {"id": "agent", "type": "handoff", "message": "An agent will write soon."},
        ],
        "edges": [{"from": "menu", "to": "ask", "port": "sales"}, {"from": "ask", "to": "agent"}],
    }  # fmt: skip
