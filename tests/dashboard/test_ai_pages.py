"""The AI page over plain HTTP, on both backends: intents with their phrases, training a
version (its held-out accuracy shown), classifying a message, knowledge entries; viewers
see it read-only, agents not at all; each action writes one audit entry."""

from __future__ import annotations

import re
from typing import Any

import httpx

from botplatform.runtime import Runtime
from tests.conftest import Api, eventually
from tests.dashboard.helpers import browser_login, csrf_of, post_form, unlabelled_controls
from tests.dashboard.test_dashboard import _audit_actions

PHRASES = {
    "greeting": ["hi", "hello", "good morning", "hey there", "hi there", "good evening"],
    "pricing": [
        "how much is it",
        "price list",
        "what does it cost",
        "any discounts",
        "how much does it cost",
        "what are your prices",
    ],
}


async def _model(api: Api, headers: dict[str, str], ws: str, version: int) -> Any:
    got = await api.http.get(f"/api/v1/workspaces/{ws}/ai/models", headers=headers)
    for item in got.json()["data"]["items"]:
        if item["version"] == version and item["status"] in ("ready", "failed"):
            return item
    return None


async def test_intents_training_prediction_and_knowledge(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    path = f"/app/w/{ws}/ai"
    empty = await client.get(path)
    assert empty.status_code == 200
    assert "No intents yet." in empty.text and "No model trained yet." in empty.text
    assert unlabelled_controls(empty.text) == []
    assert f'href="{path}"' in empty.text  # in the menu

    for name, phrases in PHRASES.items():
        before = len(await _audit_actions(runtime))
        added = await post_form(
            client, path, f"{path}/intents", {"name": name, "examples": "\n".join(phrases)}
        )
        assert added.status_code == 303, added.text
        assert (await _audit_actions(runtime))[before:] == ["ai_intent.create"]
    page = await client.get(path)
    intents = re.search(r'<table id="intents">.*?</table>', page.text, re.S)
    assert intents is not None
    assert "<code>greeting</code>" in intents.group(0) and "<li>good morning</li>" in intents.group(
        0
    )

    refused = await post_form(
        client, path, f"{path}/intents", {"name": "Bad Name!", "examples": ""}
    )
    assert refused.status_code == 422
    assert "Give at least one phrase" in refused.text

    trained = await post_form(client, path, f"{path}/train", {})
    assert trained.status_code == 303 and "training_queued" in trained.headers["location"]

    async def ready() -> dict[str, Any] | None:
        got = await api.http.get(f"/api/v1/workspaces/{ws}/ai/models", headers=owner.headers)
        items = got.json()["data"]["items"]
        return items[0] if items and items[0]["status"] in ("ready", "failed") else None

    model = await eventually(ready, timeout=60)
    assert model["status"] == "ready", model
    shown = await client.get(path)
    models = re.search(r'<table id="models">.*?</table>', shown.text, re.S)
    assert models is not None
    assert "v1" in models.group(0) and "active" in models.group(0)
    assert f"{model['accuracy'] * 100:.1f} %" in models.group(0)

    # A second version, then back to the first: activation is the API's, audited once.
    again = await post_form(client, path, f"{path}/train", {})
    assert again.status_code == 303
    second = await eventually(lambda: _model(api, owner.headers, ws, 2), timeout=60)
    assert second["is_active"] is True
    before = len(await _audit_actions(runtime))
    activated = await post_form(client, path, f"{path}/models/{model['id']}/activate", {})
    assert activated.status_code == 303, activated.text
    assert (await _audit_actions(runtime))[before:] == ["ai_model.activate"]
    assert (await _model(api, owner.headers, ws, 1) or {}).get("is_active") is True

    classified = await client.get(path, params={"predict": "good morning to you"})
    assert classified.status_code == 200
    assert "Intent <code>greeting</code>" in classified.text

    entry = await post_form(
        client,
        path,
        f"{path}/knowledge",
        {"question": "Do you ship <abroad>?", "answer": "Yes, within the EU.", "content": ""},
    )
    assert entry.status_code == 303, entry.text
    listed = await client.get(path)
    assert "Do you ship &lt;abroad&gt;?" in listed.text and "<abroad>" not in listed.text
    entries = await api.http.get(f"/api/v1/workspaces/{ws}/ai/knowledge", headers=owner.headers)
    (created,) = entries.json()["data"]["items"]
    blank = await post_form(client, path, f"{path}/knowledge", {"question": "", "answer": ""})
    assert blank.status_code == 422
    before = len(await _audit_actions(runtime))
    removed = await post_form(client, path, f"{path}/knowledge/{created['id']}/delete", {})
    assert removed.status_code == 303
    assert (await _audit_actions(runtime))[before:] == ["knowledge.delete"]
    after = await api.http.get(f"/api/v1/workspaces/{ws}/ai/knowledge", headers=owner.headers)
    assert after.json()["data"]["items"] == []


async def test_viewers_read_agents_are_refused_and_no_model_is_a_clear_answer(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.http.post(
        f"/api/v1/workspaces/{ws}/ai/intents",
        json={"name": "greeting", "examples": ["hi", "hello"]},
        headers=owner.headers,
    )
    viewer = await api.add_member(owner, ws, "viewer")
    agent = await api.add_member(owner, ws, "agent")
    path = f"/app/w/{ws}/ai"

    await browser_login(client, viewer.email, viewer.password)
    page = await client.get(path)
    assert page.status_code == 200 and "<code>greeting</code>" in page.text
    assert "Add intent" not in page.text and "Train a new version" not in page.text
    untrained = await client.get(path, params={"predict": "hi"})
    assert untrained.status_code == 409 and "no trained intent model" in untrained.text
    token = csrf_of(page.text)
    for action in (f"{path}/intents", f"{path}/train", f"{path}/knowledge"):
        answer = await client.post(
            action,
            data={
                "name": "x",
                "examples": "x",
                "question": "q",
                "answer": "a",
                "csrf_token": token,
            },
        )
        assert answer.status_code == 403, action

    client.cookies.clear()
    await browser_login(client, agent.email, agent.password)
    assert f'href="{path}"' not in (await client.get(f"/app/w/{ws}/inbox")).text
    assert (await client.get(path)).status_code == 403
