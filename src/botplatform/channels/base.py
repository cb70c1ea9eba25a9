"""The adapter port every channel implements. An adapter is built per channel connection,
with that channel's decrypted credentials; it is never a shared mutable singleton."""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import httpx

from botplatform.channels.messages import (
    Capability,
    InboundEvent,
    Media,
    OutboundMessage,
    SendResult,
)
from botplatform.config import Settings
from botplatform.kit import metrics, provider_http
from botplatform.kit.errors import AppError


class ChannelInfo(Protocol):
    """What the message path reads of a channel: its row, or the cached frozen view of it
    (`channel.cache.ChannelView`), credentials decrypted."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def workspace_id(self) -> uuid.UUID: ...
    @property
    def provider(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def config(self) -> Mapping[str, Any]: ...
    @property
    def access_token(self) -> str | None: ...
    @property
    def app_secret(self) -> str | None: ...
    @property
    def verify_token(self) -> str | None: ...
    @property
    def send_rate_per_second(self) -> int: ...


class WebhookRejected(AppError):
    """A webhook that fails verification: 401, and nothing is stored."""

    status_code = 401
    code = "invalid_signature"
    message = "The webhook signature is missing or invalid."


class MalformedPayload(ValueError):
    """A signed webhook whose body is unusable: kept for inspection, never retried."""


def _no_constant(name: str) -> object:
    raise MalformedPayload(f"not JSON: {name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedPayload(f"not JSON: the number {text[:20]}… is out of range")
    return value


def load_json(body: bytes) -> object:
    """A webhook body as JSON, or `MalformedPayload` naming why not, whatever is wrong: not
    UTF-8, not JSON, nested too deep for the parser, a number Python refuses (NaN, Infinity,
    1e999999, an integer of more digits than it converts) or a NUL character, which no
    database column holds. Raised here, the event fails at once instead of being retried."""
    if b"\x00" in body or b"\\u0000" in body:
        raise MalformedPayload("not usable: the body contains a NUL character")
    try:
        return json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except MalformedPayload:
        raise
    except RecursionError as exc:
        raise MalformedPayload("not JSON: nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"not JSON: {str(exc)[:200]}") from exc


class ProviderSendError(Exception):
    """A send the provider refused. `retryable` errors (throttling, outages) are tried again
    with backoff; the others fail the message with the provider's code and title.
    `ambiguous`: no answer came after the request may have reached the provider (a read
    timeout, a dropped connection), so whether it was accepted is unknown; a message is then
    never sent again automatically (channels/delivery.py)."""

    def __init__(
        self,
        *,
        retryable: bool,
        code: str,
        title: str,
        http_status: int = 0,
        ambiguous: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {title}")
        self.retryable = retryable
        self.code = code
        self.title = title
        self.http_status = http_status
        self.ambiguous = ambiguous
        #: Seconds the provider asked us to wait before trying again (Telegram's 429
        #: `retry_after`): the retry waits exactly that long.
        self.retry_after = retry_after


async def post_json(url: str, payload: Any, headers: dict[str, str]) -> tuple[int, Any]:
    """A send on the message path (`kit.provider_http`), its transport failures as
    `ProviderSendError`: `NeverSent` is safe to try again; `MaybeSent` is ambiguous (the
    provider may have it) and never re-sent blindly."""
    try:
        return await provider_http.post_json(url, payload, headers)
    except provider_http.NeverSent as exc:  # no connection was made: it never left
        raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
    except provider_http.MaybeSent as exc:  # it may have arrived: the outcome is unknown
        raise ProviderSendError(
            retryable=True, code="network", title=str(exc), ambiguous=True
        ) from exc


CHANNEL_NOT_CONFIGURED = "channel_not_configured"
#: A send refused because the person blocked the channel (Telegram's 403 "bot was blocked by
#: the user"): final, and the contact is opted out (channels/tasks.py).
RECIPIENT_BLOCKED = "recipient_blocked"
#: An edit refused because the message already says exactly that (Telegram's 400 "message is
#: not modified"): the customer sees the text asked for, so the edit has done its job.
UNCHANGED = "message_not_modified"


def not_configured(setting: str, how: str) -> ProviderSendError:
    """A call the channel cannot make at all, for a setting it lacks: final (no retry can
    help) and named, so the user knows what to set instead of reading a provider error."""
    return ProviderSendError(
        retryable=False,
        code=CHANNEL_NOT_CONFIGURED,
        title=f"This channel has no {setting}: {how}",
    )


class ChannelAdapter(Protocol):
    provider: ClassVar[str]
    #: What the channel shows besides text; anything else is degraded before it is queued.
    capabilities: ClassVar[frozenset[Capability]]

    def __init__(
        self, channel: ChannelInfo, settings: Settings, http: httpx.AsyncClient
    ) -> None: ...

    def handshake(self, params: Mapping[str, str]) -> str | None:
        """The body to answer a provider's GET verification with, or None to refuse."""
        ...

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raises WebhookRejected unless the raw body is signed by the provider."""
        ...

    def parse(self, body: bytes) -> list[InboundEvent]: ...

    def statuses_only(self, body: bytes) -> bool:
        """True when the webhook surely carries delivery statuses and nothing else (no
        message, no template or account update): it is processed in the status lane, apart
        from the messages customers wait an answer to. A cheap look at the bytes, no parse;
        False when unsure (the message lane takes everything)."""
        ...

    async def send(self, message: OutboundMessage) -> SendResult: ...

    async def fetch_media(self, media: Media) -> tuple[bytes, str]:
        """The bytes and mime type of inbound media."""
        ...

    async def upload_media(self, data: bytes, mime_type: str, filename: str) -> str:
        """Uploads media for later sends; the provider's media id."""
        ...


def dedupe_key_of(adapter: object, body: bytes) -> str:
    """What makes two webhooks the same event: the body's hash, unless the adapter names a
    provider's event id (`dedupe_key`, e.g. Slack's event_id, repeated by its retries)."""
    keyed = getattr(adapter, "dedupe_key", None)
    key = keyed(body) if keyed is not None else None  # None: this body names no event id
    return str(key) if key else hashlib.sha256(body).hexdigest()


def immediate_answer_of(adapter: object, body: bytes) -> str | None:
    """The text a provider expects back at once instead of our acknowledgement, with nothing
    stored (Slack's url_verification challenge); None for every ordinary webhook."""
    answer = getattr(adapter, "immediate_answer", None)
    return answer(body) if answer is not None else None


async def send_measured(
    adapter: ChannelAdapter, channel: ChannelInfo, outbound: OutboundMessage
) -> SendResult:
    """`adapter.send`, timed and counted for Prometheus by provider and outcome."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        result = await adapter.send(outbound)
    except ProviderSendError as exc:
        outcome = "unknown" if exc.ambiguous else "retry" if exc.retryable else "refused"
        metrics.PROVIDER_ERRORS.labels(adapter.provider, outcome).inc()
        raise
    finally:
        elapsed = time.perf_counter() - started
        metrics.PROVIDER_LATENCY.labels(adapter.provider, outcome).observe(elapsed)
    metrics.count_messages(channel.workspace_id, "outbound")
    return result
