"""Prometheus around the one adapter send: latency and errors by provider and outcome (a
bounded label set), and the per-workspace counter of messages the provider accepted."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import ClassVar

import pytest
from prometheus_client import REGISTRY

from botplatform.channels.base import ProviderSendError, send_measured
from botplatform.channels.messages import Content, MessageType, OutboundMessage, SendResult


@dataclass
class Channel:
    id: uuid.UUID
    workspace_id: uuid.UUID


class Adapter:
    provider: ClassVar[str] = "whatsapp"

    def __init__(self, error: ProviderSendError | None = None) -> None:
        self.error = error

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.error is not None:
            raise self.error
        return SendResult(provider_message_id="wamid.1")


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.asyncio
async def test_sends_are_timed_and_counted_by_provider_and_outcome() -> None:
    channel = Channel(uuid.uuid4(), uuid.uuid4())
    message = OutboundMessage("15550001111", Content(MessageType.TEXT, "hi"), "key-1")
    ws = {"workspace": str(channel.workspace_id), "direction": "outbound"}
    ok = {"provider": "whatsapp", "outcome": "ok"}
    refused = {"provider": "whatsapp", "outcome": "refused"}
    unknown = {"provider": "whatsapp", "outcome": "unknown"}
    before = {
        "ok": sample("provider_request_duration_seconds_count", ok),
        "refused": sample("provider_errors_total", refused),
        "unknown": sample("provider_errors_total", unknown),
    }
    await send_measured(Adapter(), channel, message)  # type: ignore[arg-type]
    with pytest.raises(ProviderSendError):
        error = ProviderSendError(retryable=False, code="131026", title="undeliverable")
        await send_measured(Adapter(error), channel, message)  # type: ignore[arg-type]
    with pytest.raises(ProviderSendError):
        error = ProviderSendError(retryable=False, code="network", title="gone", ambiguous=True)
        await send_measured(Adapter(error), channel, message)  # type: ignore[arg-type]
    assert sample("provider_request_duration_seconds_count", ok) == before["ok"] + 1
    assert sample("provider_errors_total", refused) == before["refused"] + 1
    assert sample("provider_errors_total", unknown) == before["unknown"] + 1
    assert sample("provider_request_duration_seconds_count", refused) >= 1
    assert sample("workspace_messages_total", ws) == 1  # only the accepted send
