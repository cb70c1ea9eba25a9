"""Small helpers other test modules use to give a workspace AI objects (the walkers)."""

from __future__ import annotations

from tests.conftest import Account, Api

TWO_INTENTS = {
    "greeting": ["hi", "hello", "good morning", "hey there"],
    "pricing": ["how much is it", "price list", "what does it cost", "any discounts"],
}


async def ai_objects(api: Api, owner: Account, ws: str) -> dict[str, str]:
    """An intent, a knowledge entry and a (queued) model version in `ws`: their ids."""
    base = f"/api/v1/workspaces/{ws}/ai"
    intent_id = ""
    for name, examples in TWO_INTENTS.items():
        created = await api.http.post(
            f"{base}/intents", json={"name": name, "examples": examples}, headers=owner.headers
        )
        assert created.status_code == 201, created.text
        intent_id = created.json()["data"]["id"]
    entry = await api.http.post(
        f"{base}/knowledge",
        json={"question": "Do you ship abroad?", "answer": "Yes, within the EU."},
        headers=owner.headers,
    )
    assert entry.status_code == 201, entry.text
    model = await api.http.post(f"{base}/intents/train", headers=owner.headers)
    assert model.status_code == 202, model.text
    return {
        "intent_id": intent_id,
        "entry_id": entry.json()["data"]["id"],
        "model_id": model.json()["data"]["id"],
    }
