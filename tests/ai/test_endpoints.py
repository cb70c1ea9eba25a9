"""The AI API: intents, training as a background job into versioned models, inference,
knowledge entries and their retrieval, grounded answers and their metering."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.models import AiIntentModel
from botplatform.runtime import Runtime
from botplatform.worker.jobs import JobContext
from botplatform.worker.sweeper import sweep_once
from tests.ai.test_service import FAQ, support_dataset
from tests.conftest import Account, Api, eventually
from tests.fakes.openai import FakeOpenAI


def url(ws: str, path: str) -> str:
    return f"/api/v1/workspaces/{ws}/ai{path}"


async def owner_ws(api: Api) -> tuple[Account, str]:
    owner = await api.register()
    return owner, await api.create_workspace(owner)


async def add_intents(
    client: httpx.AsyncClient, owner: Account, ws: str, dataset: dict[str, list[str]]
) -> dict[str, str]:
    ids = {}
    for name, phrases in dataset.items():
        response = await client.post(
            url(ws, "/intents"), json={"name": name, "examples": phrases}, headers=owner.headers
        )
        assert response.status_code == 201, response.text
        ids[name] = response.json()["data"]["id"]
    return ids


async def train(client: httpx.AsyncClient, owner: Account, ws: str) -> dict[str, Any]:
    """Requests training and waits for the job to finish; returns the model version."""
    response = await client.post(url(ws, "/intents/train"), headers=owner.headers)
    assert response.status_code == 202, response.text
    queued = response.json()["data"]
    assert queued["status"] in {"queued", "training", "ready"}

    async def finished() -> dict[str, Any] | None:
        got = await client.get(url(ws, f"/models/{queued['id']}"), headers=owner.headers)
        model: dict[str, Any] = got.json()["data"]
        return model if model["status"] in {"ready", "failed"} else None

    return dict(await eventually(finished, timeout=60))


async def predict(client: httpx.AsyncClient, owner: Account, ws: str, text: str) -> Any:
    response = await client.get(
        url(ws, "/intents/predict"), params={"text": text}, headers=owner.headers
    )
    return response


async def test_intent_crud_validation_and_permissions(client: httpx.AsyncClient, api: Api) -> None:
    owner, ws = await owner_ws(api)
    viewer = await api.add_member(owner, ws, "viewer")
    body = {"name": "greeting", "examples": ["hi", "Hi", "hello", " hey "]}
    created = await client.post(url(ws, "/intents"), json=body, headers=owner.headers)
    assert created.status_code == 201, created.text
    intent = created.json()["data"]
    assert intent["examples"] == ["hi", "hello", "hey"]  # trimmed, duplicates dropped
    again = await client.post(url(ws, "/intents"), json=body, headers=owner.headers)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "intent_exists")
    for bad in (
        {"name": "Not A Name", "examples": ["x"]},
        {"name": "ok", "examples": []},
        {"name": "ok", "examples": [""]},
        {"name": "ok", "examples": ["x" * 301]},
        {"name": "ok", "examples": ["x"], "workspace_id": str(uuid.uuid4())},
    ):
        refused = await client.post(url(ws, "/intents"), json=bad, headers=owner.headers)
        assert refused.status_code == 422, bad
        assert refused.json()["success"] is False
    listed = await client.get(url(ws, "/intents"), headers=viewer.headers)
    assert [i["name"] for i in listed.json()["data"]["items"]] == ["greeting"]
    denied = await client.post(url(ws, "/intents"), json=body, headers=viewer.headers)
    assert denied.status_code == 403
    patched = await client.patch(
        url(ws, f"/intents/{intent['id']}"),
        json={"name": "hello", "examples": ["hi", "hello there"]},
        headers=owner.headers,
    )
    assert patched.json()["data"]["name"] == "hello"
    assert patched.json()["data"]["examples"] == ["hi", "hello there"]
    gone = await client.delete(url(ws, f"/intents/{intent['id']}"), headers=owner.headers)
    assert gone.status_code == 200
    missing = await client.get(url(ws, f"/intents/{intent['id']}"), headers=owner.headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "intent_not_found")


async def test_training_needs_enough_data_and_no_model_means_no_prediction(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner, ws = await owner_ws(api)
    none_yet = await predict(client, owner, ws, "hello")
    assert (none_yet.status_code, none_yet.json()["error"]["code"]) == (409, "no_active_model")
    await add_intents(client, owner, ws, {"greeting": ["hi", "hello", "hey", "good morning"]})
    refused = await client.post(url(ws, "/intents/train"), headers=owner.headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "training_data_insufficient"
    await add_intents(client, owner, ws, {"bye": ["bye", "see you"]})
    refused = await client.post(url(ws, "/intents/train"), headers=owner.headers)
    assert "bye" in refused.json()["error"]["message"]


async def test_training_job_versions_and_inference_end_to_end(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner, ws = await owner_ws(api)
    dataset = support_dataset()
    ids = await add_intents(client, owner, ws, dataset)
    first = await train(client, owner, ws)
    assert first["status"] == "ready", first["error"]
    assert (first["version"], first["is_active"]) == (1, True)
    assert first["accuracy"] >= 0.9
    assert first["intents"] == sorted(dataset)
    assert first["metrics"]["test_size"] >= len(dataset)
    hit = await predict(client, owner, ws, "where is my parcel??")
    assert hit.status_code == 200, hit.text
    assert (hit.json()["data"]["intent"], hit.json()["data"]["version"]) == ("order_status", 1)

    # Retrain without "pricing": a new version, active; the first is kept, inactive.
    await client.delete(url(ws, f"/intents/{ids['pricing']}"), headers=owner.headers)
    second = await train(client, owner, ws)
    assert (second["version"], second["is_active"], second["status"]) == (2, True, "ready")
    assert "pricing" not in second["intents"]
    models = (await client.get(url(ws, "/models"), headers=owner.headers)).json()["data"]
    assert [(m["version"], m["is_active"]) for m in models["items"]] == [(1, False), (2, True)]
    now = (await predict(client, owner, ws, "how much does it cost")).json()["data"]
    assert now["version"] == 2 and "pricing" not in now["scores"]

    # Rolling back to version 1 brings "pricing" back at once.
    back = await client.post(url(ws, f"/models/{first['id']}/activate"), headers=owner.headers)
    assert back.status_code == 200 and back.json()["data"]["is_active"] is True
    then = (await predict(client, owner, ws, "how much does it cost")).json()["data"]
    assert (then["intent"], then["version"]) == ("pricing", 1)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, uuid.UUID(ws))
        rows = (await db.execute(select(AiIntentModel))).scalars().all()
    assert sorted((m.version, m.is_active) for m in rows) == [(1, True), (2, False)]
    assert all(m.artifact and m.artifact.startswith('{"format"') for m in rows)


async def test_a_failed_training_is_recorded_and_cannot_be_activated(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner, ws = await owner_ws(api)
    async with runtime.db.unit_of_work() as db:  # a snapshot that cannot be learnt
        await enter_workspace(db, uuid.UUID(ws))
        model = AiIntentModel(
            workspace_id=uuid.UUID(ws), version=1, dataset={"only": ["a", "b", "c", "d"]}
        )
        db.add(model)
        await db.flush()
        model_id = str(model.id)
    runtime.jobs.send("train_intent_model", ws, model_id)

    async def failed() -> dict[str, Any] | None:
        got = await client.get(url(ws, f"/models/{model_id}"), headers=owner.headers)
        data: dict[str, Any] = got.json()["data"]
        return data if data["status"] == "failed" else None

    model_out = await eventually(failed)
    assert "at least 2 intents" in model_out["error"]
    refused = await client.post(url(ws, f"/models/{model_id}/activate"), headers=owner.headers)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "model_not_ready")


async def test_knowledge_crud_and_retrieval_picks_the_right_entries(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner, ws = await owner_ws(api)
    ids = []
    for question, answer in FAQ:
        created = await client.post(
            url(ws, "/knowledge"),
            json={"question": question, "answer": answer},
            headers=owner.headers,
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["data"]["id"])
    queries = {
        "when are you open on friday?": 0,
        "can you ship my order to France": 1,
        "I want to return these shoes": 2,
        "can I pay with paypal": 3,
    }
    for query, expected in queries.items():
        found = await client.get(
            url(ws, "/knowledge/search"), params={"q": query, "k": 2}, headers=owner.headers
        )
        hits = found.json()["data"]
        assert hits[0]["entry"]["id"] == ids[expected], (query, hits)
        assert 0 < hits[0]["score"] <= 1 and len(hits) <= 2
    nothing = await client.get(
        url(ws, "/knowledge/search"), params={"q": "zebra"}, headers=owner.headers
    )
    assert nothing.json()["data"] == []
    patched = await client.patch(
        url(ws, f"/knowledge/{ids[0]}"),
        json={"answer": "Open every day, 8:00 to 20:00.", "content": "Holidays: closed."},
        headers=owner.headers,
    )
    assert patched.json()["data"]["content"] == "Holidays: closed."
    bad = await client.patch(
        url(ws, f"/knowledge/{ids[0]}"), json={"answer": ""}, headers=owner.headers
    )
    assert bad.status_code == 422
    assert (await client.delete(url(ws, f"/knowledge/{ids[3]}"), headers=owner.headers)).is_success
    listed = (await client.get(url(ws, "/knowledge"), headers=owner.headers)).json()["data"]
    assert [e["id"] for e in listed["items"]] == ids[:3]


async def test_answer_endpoint_grounds_meters_and_reports_usage(
    client: httpx.AsyncClient, api: Api, openai: FakeOpenAI
) -> None:
    owner, ws = await owner_ws(api)
    agent = await api.add_member(owner, ws, "agent")
    for question, answer in FAQ:
        await client.post(
            url(ws, "/knowledge"),
            json={"question": question, "answer": answer},
            headers=owner.headers,
        )
    asked = await client.post(
        url(ws, "/answer"), json={"question": "Which cards do you take?"}, headers=owner.headers
    )
    assert asked.status_code == 200, asked.text
    data = asked.json()["data"]
    assert data["text"] == f"Here is what I found: {FAQ[3][1]}"
    assert (data["fallback_used"], data["outcome"]) == (False, "ok")
    assert FAQ[3][1] in openai.requests[0]["messages"][0]["content"]
    openai.fail_status = 500
    failed = (
        await client.post(url(ws, "/answer"), json={"question": "hm?"}, headers=owner.headers)
    ).json()["data"]
    assert (failed["fallback_used"], failed["outcome"]) == (True, "provider_error")
    usage = (await client.get(url(ws, "/usage"), headers=owner.headers)).json()["data"]
    assert usage["calls"] == 2
    assert usage["total_tokens"] == data["prompt_tokens"] + data["completion_tokens"] > 0
    assert usage["by_outcome"]["provider_error"] == {"calls": 1, "total_tokens": 0}
    assert usage["monthly_token_limit"] == 200_000  # the starter plan's
    denied = await client.post(url(ws, "/answer"), json={"question": "x"}, headers=agent.headers)
    assert denied.status_code == 403


async def test_a_lost_training_job_is_swept_and_a_duplicate_trains_once(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner, ws = await owner_ws(api)
    await add_intents(client, owner, ws, support_dataset())
    async with runtime.db.unit_of_work() as db:  # requested, but its job never left
        await enter_workspace(db, uuid.UUID(ws))
        model = AiIntentModel(
            workspace_id=uuid.UUID(ws), version=1, dataset=support_dataset(), status="queued"
        )
        db.add(model)
        await db.flush()
        model_id = model.id
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(update(AiIntentModel).values(updated_at=utcnow() - timedelta(minutes=10)))
    async with runtime.db.unit_of_work(system=True) as db:
        swept = await sweep_once(JobContext(runtime, db, "manual", 1, 1), after_seconds=300)
    assert swept["ai_intent_models"] == 1
    runtime.jobs.send("train_intent_model", ws, str(model_id))  # and a duplicate delivery

    async def ready() -> dict[str, Any] | None:
        got = await client.get(url(ws, f"/models/{model_id}"), headers=owner.headers)
        data: dict[str, Any] = got.json()["data"]
        return data if data["status"] == "ready" else None

    trained = await eventually(ready, timeout=60)
    assert trained["is_active"] is True and trained["accuracy"] >= 0.9
    models = (await client.get(url(ws, "/models"), headers=owner.headers)).json()["data"]
    assert [m["version"] for m in models["items"]] == [1]


async def test_a_slow_model_does_not_block_other_writes(
    client: httpx.AsyncClient, api: Api, openai: FakeOpenAI
) -> None:
    """On SQLite a request's transaction holds the write lock: the answer route lets go of it
    before calling the model, so the rest of the platform keeps writing meanwhile."""
    owner, ws = await owner_ws(api)
    openai.delay = 1.5
    asking = asyncio.create_task(
        client.post(url(ws, "/answer"), json={"question": "hello?"}, headers=owner.headers)
    )
    await eventually(lambda: openai.requests)  # the model is thinking now
    started = time.monotonic()
    created = await client.post(
        url(ws, "/knowledge"), json={"question": "q", "answer": "a"}, headers=owner.headers
    )
    assert created.status_code == 201
    assert time.monotonic() - started < 1.0
    assert not asking.done()
    answered = await asking
    assert answered.json()["data"]["outcome"] == "ok"
    usage = (await client.get(url(ws, "/usage"), headers=owner.headers)).json()["data"]
    assert usage["calls"] == 1 and usage["total_tokens"] > 0
