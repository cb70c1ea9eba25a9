"""A signed webhook whose body cannot be parsed, whatever the reason, ends `failed` with the
reason at once: never retried, never dead-lettered, never sent again by the sweeper; through
both doors (the FastAPI route and the webhook lane). A processing job that keeps failing for
another reason marks its event failed on its last attempt, so the sweeper stops too."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from botplatform.channels import tasks
from botplatform.channels.inbound import WebhookLane
from botplatform.kit import metrics
from botplatform.models import DeadJob, InboundEvent
from botplatform.runtime import Runtime
from botplatform.worker.jobs import REGISTRY, JobContext
from botplatform.worker.sweeper import sweep_once
from tests.conftest import Api, eventually, meta_signature, whatsapp_text_payload

OBJECT = '{"object":"whatsapp_business_account","entry":'


def _message(field: str) -> bytes:
    """A text message whose `timestamp` is the raw JSON `field`."""
    return (
        OBJECT + '[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":'
        '"whatsapp","messages":[{"from":"15550001","id":"wamid.odd","timestamp":'
        + field
        + ',"type":"text","text":{"body":"hi"}}]}}]}]}'
    ).encode()


# Each: (name, body, a word the recorded reason contains).
UNPARSABLE: list[tuple[str, bytes, str]] = [
    ("deep nesting", b"[" * 30_000 + b"]" * 30_000, "nested"),
    ("deep object", b'{"a":' * 6_000 + b"1" + b"}" * 6_000, "nested"),
    ("float overflow", _message("1e999999"), "out of range"),
    ("huge integer", _message("1" * 50_000), "digits"),
    ("NaN", _message("NaN"), "NaN"),
    ("Infinity", OBJECT.encode() + b"-Infinity}", "Infinity"),
    ("invalid UTF-8", OBJECT.encode() + b'[{"id":"\xff\xfe\xc3"}]}', "UTF-8"),
    ("NUL byte", OBJECT.encode() + b'[{"id":"a\x00b"}]}', "NUL"),
    ("escaped NUL", _message('"17\\u0000"'), "NUL"),
    ("a string", b'"whatsapp_business_account"', "not an object"),
    ("a number", b"42", "not an object"),
    ("null", b"null", "not an object"),
    ("a list", b"[]", "not an object"),
    ("entry not a list", OBJECT.encode() + b'{"id":"1"}}', "entry"),
    ("truncated", OBJECT.encode() + b"[{", "not JSON"),
]
# Wrong types below the envelope: processed or failed, but never pending, never retried.
ODD_TYPES = [
    OBJECT.encode() + b'[{"changes":"x"}]}',
    OBJECT.encode() + b'[{"changes":[{"value":[1,2]}]}, 7, null]}',
    OBJECT.encode() + b'[{"changes":[{"field":"messages","value":{"messages":[{"from":5,"id":[],'
    b'"timestamp":{},"type":7}],"statuses":"no","contacts":{}}}]}]}',
    _message("true"),
    _message("-1e308"),
]


@pytest.fixture
def lane_answers(monkeypatch: pytest.MonkeyPatch) -> Counter[bool]:
    answers: Counter[bool] = Counter()
    real = WebhookLane._acknowledge

    async def counted(self: WebhookLane, *args: Any) -> bool:
        answered = await real(self, *args)
        answers[answered] += 1
        return answered

    monkeypatch.setattr(WebhookLane, "_acknowledge", counted)
    return answers


async def _events(runtime: Runtime) -> list[InboundEvent]:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        return list((await db.execute(select(InboundEvent))).scalars().all())


async def _dead(runtime: Runtime) -> list[DeadJob]:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        return list((await db.execute(select(DeadJob))).scalars().all())


async def _swept(runtime: Runtime) -> dict[str, int]:
    async with runtime.db.unit_of_work(system=True) as db:
        ctx = JobContext(runtime=runtime, db=db, message_id="", attempt=1, max_attempts=1)
        return await sweep_once(ctx, after_seconds=0)


def _retried() -> float:
    """Retries of the processing jobs: the group's (one per workspace) and the sweeper's."""
    return sum(
        metrics.JOBS.labels(name, "retried")._value.get()
        for name in ("process_inbound_events", "process_inbound_event")
    )


async def _channel(api: Api) -> str:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    return str((await api.create_channel(owner, ws))["id"])


async def _post_both_doors(
    client: httpx.AsyncClient, runtime: Runtime, channel_id: str, body: bytes
) -> None:
    """Through the route (the channel unknown to this process), then a variant of the same
    body through the lane (the route made the channel known)."""
    url = f"/webhooks/whatsapp/{channel_id}"
    runtime.intake.forget(uuid.UUID(channel_id))
    for content in (body, body + b" "):
        response = await client.post(url, content=content, headers=meta_signature(content))
        assert response.status_code == 200, response.text
        assert response.json()["data"] == {"received": True, "duplicate": False}


async def test_unparsable_signed_bodies_fail_at_once_with_the_reason(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, lane_answers: Counter[bool]
) -> None:
    channel_id = await _channel(api)
    retried = _retried()
    for _, body, _ in UNPARSABLE:
        await _post_both_doors(client, runtime, channel_id, body)
    assert lane_answers[True] == len(UNPARSABLE)  # every variant took the lane

    async def all_failed() -> list[InboundEvent] | None:
        rows = await _events(runtime)
        done = [row for row in rows if row.status != "pending"]
        return rows if len(done) == 2 * len(UNPARSABLE) else None

    rows = await eventually(all_failed)
    by_body = {row.dedupe_key: row for row in rows}
    import hashlib

    for name, body, reason in UNPARSABLE:
        for content in (body, body + b" "):
            row = by_body[hashlib.sha256(content).hexdigest()]
            assert row.status == "failed", name
            assert row.error and reason in row.error, (name, row.error)
            assert row.processed_at is None
    assert _retried() == retried  # failed on the first attempt, none retried
    assert await _dead(runtime) == []
    assert (await _swept(runtime))["inbound_events"] == 0


async def test_wrong_types_below_the_envelope_never_stay_pending(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    channel_id = await _channel(api)
    retried = _retried()
    for body in ODD_TYPES:
        await _post_both_doors(client, runtime, channel_id, body)

    async def settled() -> list[InboundEvent] | None:
        rows = await _events(runtime)
        return rows if all(row.status != "pending" for row in rows) else None

    rows = await eventually(settled)
    assert len(rows) == 2 * len(ODD_TYPES)
    assert all(row.status in ("processed", "failed") for row in rows)
    assert _retried() == retried
    assert await _dead(runtime) == []
    assert (await _swept(runtime))["inbound_events"] == 0


async def test_a_processing_job_failing_on_its_last_attempt_fails_its_event(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("the database refused this row")

    monkeypatch.setattr(tasks.batch, "apply_items", broken)
    channel_id = await _channel(api)
    body = json.dumps(whatsapp_text_payload("15550002", "hi", "C", "wamid.broken")).encode()
    response = await client.post(
        f"/webhooks/whatsapp/{channel_id}", content=body, headers=meta_signature(body)
    )
    assert response.status_code == 200
    (event,) = await _events(runtime)
    spec = REGISTRY["process_inbound_event"]
    # The job's last attempt, as the worker runs it (its own unit of work, rolled back on
    # the error it raises; dramatiq then records it in dead_jobs).
    with pytest.raises(RuntimeError, match="refused"):
        async with runtime.db.unit_of_work() as db:
            ctx = JobContext(
                runtime=runtime,
                db=db,
                message_id="m",
                attempt=spec.max_retries + 1,
                max_attempts=spec.max_retries + 1,
            )
            await spec.fn(ctx, str(event.workspace_id), str(event.id))
    (after,) = await _events(runtime)
    assert after.status == "failed"
    assert after.error and "RuntimeError: the database refused this row" in after.error
    assert (await _swept(runtime))["inbound_events"] == 0
