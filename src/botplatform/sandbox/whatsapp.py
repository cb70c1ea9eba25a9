"""A fake WhatsApp Cloud (Graph) API on loopback.

It answers the real endpoints (send, mark-as-read, media upload/metadata/download, message
templates) with Meta's shapes and error JSON, and posts signed webhooks (delivery statuses,
inbound messages, template reviews) to the platform, so the platform can be run and tested
end to end without a Meta account."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import uvicorn
from starlette.applications import Starlette

from botplatform.sandbox import meta, payloads
from botplatform.sandbox.routes import EXCEPTION_HANDLERS, lifespan, routes
from botplatform.sandbox.templates import TemplateStore, review, status_value, template_routes

log = logging.getLogger(__name__)

#: A webhook's connection within 5 s, and the platform's answer within 10 s (its client's
#: settings when one is injected).
WEBHOOK_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10.0, sock_connect=5.0, sock_read=10.0)
#: Connections the fake's own webhook client keeps open to the platform, at most.
WEBHOOK_CONNECTIONS = 100
AUTO_STATUSES = ("sent", "delivered", "read")


@dataclass(frozen=True)
class StoredMedia:
    data: bytes
    mime_type: str
    sha256: str


@dataclass(frozen=True)
class Number:
    """A business phone number the fake answers for, and where its webhooks go."""

    phone_number_id: str
    display_phone_number: str
    waba_id: str
    webhook_url: str | None


@dataclass(frozen=True)
class Failure:
    """One injected answer to a message send, instead of accepting it."""

    status: int
    code: int
    title: str


#: Status webhooks the fake posts at once by default (`FakeGraph.status_concurrency`).
STATUS_CONCURRENCY = 32


class FakeGraph:
    """The state behind the fake API: what it received and sent, media, injected failures."""

    def __init__(
        self,
        *,
        access_tokens: set[str],
        app_secret: str,
        webhook_url: str | None = None,
        phone_number_id: str = "1122334455667",
        display_phone_number: str = "15550001111",
        waba_id: str = "102290129340398",
        auto_status: bool = True,
        status_delay: float = 0.05,
        template_approval_delay: float = 5.0,
        webhook_client: httpx.AsyncClient | None = None,
        status_concurrency: int = STATUS_CONCURRENCY,
    ) -> None:
        self.access_tokens = set(access_tokens)
        self.app_secret = app_secret
        self.webhook_url = webhook_url
        self.phone_number_id = phone_number_id
        self.display_phone_number = display_phone_number
        self.waba_id = waba_id
        self.auto_status = auto_status
        self.status_delay = status_delay
        #: Status webhooks in flight at once, at most: a broadcast's thousands of sends a
        #: second must not open thousands of connections to the platform at once (Meta too
        #: spreads its webhooks out); the rest wait their turn.
        self.status_concurrency = status_concurrency
        self._status_room: asyncio.Semaphore | None = None
        #: Seconds a new template stays PENDING before its review (and status webhook).
        self.template_approval_delay = template_approval_delay
        self._injected_client = webhook_client
        self._own_session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Numbers the platform told the fake about (``connect``), besides the default one.
        #: A reset keeps them: they are configuration, like the default number.
        self.numbers: dict[str, Number] = {}
        #: Facebook Pages and Instagram accounts (Messenger and Instagram channels), by id.
        self.pages: dict[str, meta.Page] = {}
        self._init_state()

    def _init_state(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._callback_data: dict[str, str] = {}
        self.sent: list[dict[str, Any]] = []
        self.marked_read: list[str] = []
        #: Every webhook payload posted (or attempted), in order.
        self.webhooks: list[dict[str, Any]] = []
        self.last_delivery = ""
        self.media: dict[str, StoredMedia] = {}
        self.latency = 0.0
        self._failures: deque[Failure] = deque()
        self._wamids: set[str] = set()
        # Which number sent each message: its statuses go to that number's webhook.
        self._senders: dict[str, str] = {}
        # One conversation per recipient, as Meta opens one per 24-hour window.
        self._conversations: dict[str, str] = {}
        # A customer keeps the profile name first seen with their number.
        self._names: dict[str, str] = {}
        #: Every business account's message templates (``sandbox.templates``).
        self.templates = TemplateStore()
        #: Send API calls accepted (Messenger and Instagram), in order.
        self.page_sent: list[dict[str, Any]] = []
        #: Sender actions (mark_seen, typing, reactions), in order.
        self.page_actions: list[dict[str, Any]] = []
        #: Profile reads (PSID/IGSID), in order.
        self.profile_reads: list[str] = []

    # -- numbers ---------------------------------------------------------------------------

    @property
    def default_number(self) -> Number:
        return Number(
            self.phone_number_id, self.display_phone_number, self.waba_id, self.webhook_url
        )

    def connect(
        self,
        phone_number_id: str,
        webhook_url: str,
        *,
        display_phone_number: str | None = None,
        waba_id: str | None = None,
    ) -> Number:
        """Answer for ``phone_number_id`` from now on and post its webhooks to ``webhook_url``
        (told by the platform when a sandbox channel is created, or by ``/_sandbox/channels``).
        """
        number = Number(
            phone_number_id,
            display_phone_number or self.display_phone_number,
            waba_id or self.waba_id,
            webhook_url,
        )
        if phone_number_id == self.phone_number_id:
            self.webhook_url = webhook_url
        # Re-inserted last: a customer writes to the latest connected number by default.
        self.numbers.pop(phone_number_id, None)
        self.numbers[phone_number_id] = number
        return number

    def number(self, phone_number_id: str | None = None) -> Number | None:
        """The number with this id; without an id, the latest connected one (else the
        default). None for an id the fake was never told about."""
        if phone_number_id is None:
            latest = next(reversed(self.numbers.values()), None)
            return latest if latest is not None else self.default_number
        if phone_number_id == self.phone_number_id:
            return self.default_number
        return self.numbers.get(phone_number_id)

    def waba_ids(self) -> set[str]:
        """The business accounts the fake answers for: those of its numbers."""
        return {self.waba_id, *(number.waba_id for number in self.numbers.values())}

    def customer_name(self, wa_id: str, name: str | None = None) -> str:
        """The profile name of a customer: as given, else the one given before, else
        "Customer" and the number's last digits (more of them when another customer already
        has that name), so two customers never look alike."""
        if name:
            self._names[wa_id] = name
            return name
        if wa_id in self._names:
            return self._names[wa_id]
        taken = {known for number, known in self._names.items() if number != wa_id}
        for digits in range(4, len(wa_id) + 1):
            candidate = f"Customer {wa_id[-digits:]}"
            if candidate not in taken:
                break
        self._names[wa_id] = candidate
        return candidate

    # -- test controls -------------------------------------------------------------------

    def fail_next(self, status: int, code: int, *, title: str = "", times: int = 1) -> None:
        """Answer the next ``times`` message sends with this Graph error instead of accepting.

        ``title`` defaults to Meta's title for ``code``. Mark-as-read calls are not affected."""
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if times < 1:
            raise ValueError("times must be at least 1")
        title = title or payloads.ERROR_TITLES.get(code, "Something went wrong")
        self._failures.extend([Failure(status, code, title)] * times)

    def take_failure(self) -> Failure | None:
        return self._failures.popleft() if self._failures else None

    def reset(self) -> None:
        """Forget everything recorded, stored and injected; stop pending status chains."""
        for task in self._tasks:
            task.cancel()
        self._init_state()

    def add_media(self, data: bytes, mime_type: str) -> str:
        """Store media (an upload, or a customer's photo for an inbound test); return its id."""
        media_id = payloads.media_id()
        while media_id in self.media:
            media_id = payloads.media_id()
        digest = hashlib.sha256(data).hexdigest()
        self.media[media_id] = StoredMedia(data=data, mime_type=mime_type, sha256=digest)
        return media_id

    # -- the API's side effects ----------------------------------------------------------

    def accept(
        self, body: dict[str, Any], kind: str, number: Number | None = None
    ) -> tuple[str, str]:
        """Record an accepted message; return its (wa_id, wamid) and start its statuses."""
        number = number or self.default_number
        # Meta normalizes "+1 (555) 000-1111" to the digits-only WhatsApp id.
        wa_id = "".join(char for char in str(body["to"]) if char.isdigit())
        wamid = payloads.outbound_wamid(wa_id)
        while wamid in self._wamids:
            wamid = payloads.outbound_wamid(wa_id)
        self._wamids.add(wamid)
        self._senders[wamid] = number.phone_number_id
        self.sent.append(
            {
                "wamid": wamid,
                "to": wa_id,
                "type": kind,
                "body": body,
                "phone_number_id": number.phone_number_id,
            }
        )
        # Meta echoes biz_opaque_callback_data in the message's status webhooks.
        if body.get("biz_opaque_callback_data"):
            self._callback_data[wamid] = str(body["biz_opaque_callback_data"])
        if self.auto_status and number.webhook_url:
            self._spawn(self._status_chain(wamid, wa_id, kind))
        return wa_id, wamid

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        # Keep a reference: the loop only holds tasks weakly.
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sandbox status chain failed", exc_info=task.exception())

    async def _status_chain(self, wamid: str, recipient: str, kind: str) -> None:
        if self._status_room is None:  # made on the loop that posts
            self._status_room = asyncio.Semaphore(self.status_concurrency)
        for status in AUTO_STATUSES:
            await asyncio.sleep(self.status_delay)
            async with self._status_room:
                await self._post_status(wamid, status, recipient, None, kind)

    # -- templates -----------------------------------------------------------------------

    def schedule_review(self, waba_id: str, template: dict[str, Any]) -> None:
        """Review the template after ``template_approval_delay`` and post its status."""

        async def later() -> None:
            await asyncio.sleep(self.template_approval_delay)
            status, reason = review(template)
            if template.get("status") == "PENDING":
                await self._template_status(waba_id, template, status, reason)

        self._spawn(later())

    async def set_template_status(self, template_id: str, event: str, reason: str) -> bool:
        """Set a template's status as Meta would (PAUSED, DISABLED, APPROVED ...) and post
        the status webhook; False for an unknown template."""
        found = self.templates.find(template_id)
        if found is None:
            return False
        await self._template_status(found[0], found[1], event, reason)
        return True

    async def _template_status(
        self, waba_id: str, template: dict[str, Any], event: str, reason: str
    ) -> None:
        if event in ("APPROVED", "REJECTED", "PAUSED", "DISABLED", "PENDING"):
            template["status"] = event
        template["rejected_reason"] = reason if event == "REJECTED" else "NONE"
        value = status_value(template, event, reason)
        await self.deliver_account(waba_id, "message_template_status_update", value)

    async def deliver_account(self, waba_id: str, field: str, value: dict[str, Any]) -> None:
        """Post a business-account change to the webhook of every number of that account."""
        payload = payloads.account_envelope(waba_id, field, value)
        numbers = {n.phone_number_id: n for n in (self.default_number, *self.numbers.values())}
        urls = {n.webhook_url for n in numbers.values() if n.waba_id == waba_id and n.webhook_url}
        self.webhooks.append(payload)
        if not urls:
            self.last_delivery = "no webhook URL: connect a channel first"
        for url in sorted(urls):
            await self._post(payload, url)

    # -- Messenger and Instagram ---------------------------------------------------------

    def connect_page(
        self, page_id: str, webhook_url: str, provider: str = "messenger"
    ) -> meta.Page:
        """Answer for this Page (or Instagram account) and post its webhooks to the URL."""
        page = self.pages.get(page_id) or meta.Page(page_id, provider, webhook_url)
        page.provider, page.webhook_url = provider, webhook_url
        self.pages[page_id] = page
        return page

    def page_of(self, psid: str) -> meta.Page | None:
        """The Page a customer wrote to (a Page-scoped id belongs to one Page)."""
        return next((p for p in self.pages.values() if psid in p.customers), None)

    def accept_page_send(self, page: meta.Page, psid: str, body: dict[str, Any]) -> str:
        mid = meta.new_mid()
        self.page_sent.append({"mid": mid, "to": psid, "page_id": page.page_id, "body": body})
        if self.auto_status and page.webhook_url and "message" in body:
            self._spawn(meta.after_send(self, page, psid, mid, body["message"]))
        return mid

    async def post_page_inbound(
        self, page: meta.Page, text: str, psid: str | None = None, name: str | None = None
    ) -> tuple[str, str]:
        """Be a customer writing to the Page; returns the customer's id and the message id."""
        psid = psid or meta.new_psid()
        page.customers[psid] = name or page.customers.get(psid) or f"Customer {psid[-4:]}"
        mid = meta.new_mid()
        await self.deliver_page(page, meta.customer_text(page, psid, mid, text))
        return psid, mid

    async def deliver_page(self, page: meta.Page, item: dict[str, Any]) -> None:
        payload = meta.envelope(page, item)
        self.webhooks.append(payload)
        if not page.webhook_url:
            self.last_delivery = "no webhook URL: connect a channel first"
            return
        await self._post(payload, page.webhook_url)

    # -- webhooks ------------------------------------------------------------------------

    async def post_status(
        self, wamid: str, status: str, recipient: str, errors: list[Any] | None = None
    ) -> None:
        """Post a status webhook (sent, delivered, read, failed ...) for a message."""
        kind = next((item["type"] for item in self.sent if item["wamid"] == wamid), "text")
        await self._post_status(wamid, status, recipient, errors, kind)

    async def _post_status(
        self, wamid: str, status: str, recipient: str, errors: list[Any] | None, kind: str
    ) -> None:
        category = "utility" if kind == "template" else "service"
        conversation_id = self._conversations.setdefault(recipient, secrets.token_hex(16))
        sent = status == "sent"
        conversation = payloads.conversation(conversation_id, category, with_expiry=sent)
        value = payloads.status_value(
            wamid, status, recipient, conversation=conversation, category=category, errors=errors
        )
        if wamid in self._callback_data:
            value["statuses"][0]["biz_opaque_callback_data"] = self._callback_data[wamid]
        await self.deliver(value, self.number(self._senders.get(wamid, self.phone_number_id)))

    async def post_inbound_text(
        self,
        wa_id: str,
        text: str,
        name: str | None = None,
        *,
        phone_number_id: str | None = None,
    ) -> str:
        """Simulate a customer writing to a business number (the latest connected one by
        default); return the inbound wamid. Raises LookupError for a number never told of.
        ``last_delivery`` then holds how the webhook went."""
        number = self.number(phone_number_id)
        if number is None:
            raise LookupError(f"no phone number {phone_number_id} in the sandbox")
        wamid = payloads.inbound_wamid(wa_id)
        profile = self.customer_name(wa_id, name)
        await self.deliver(payloads.inbound_text_value(wa_id, wamid, text, profile), number)
        return wamid

    async def deliver(self, value: dict[str, Any], number: Number | None = None) -> None:
        """Wrap, sign and post a change value to the number's webhook URL (the default
        number's when none is given); log, never raise, on failure. ``last_delivery`` says
        what came of it: the platform's status code, or why nothing was posted."""
        number = number or self.default_number
        payload = payloads.envelope(
            number.waba_id, number.display_phone_number, number.phone_number_id, value
        )
        self.webhooks.append(payload)
        webhook_url = number.webhook_url
        if not webhook_url:
            log.warning("sandbox: no webhook_url for %s; dropped", number.phone_number_id)
            self.last_delivery = "no webhook URL: connect a channel first"
            return
        await self._post(payload, webhook_url)

    async def _post(self, payload: dict[str, Any], webhook_url: str) -> None:
        """Sign and post one webhook payload; ``last_delivery`` says how it went."""
        body = payloads.serialize(payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            **payloads.sign(body, self.app_secret),
        }
        try:
            status = await self._post_signed(webhook_url, body, headers)
        except (httpx.HTTPError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("sandbox webhook to %s failed: %r", webhook_url, exc)
            self.last_delivery = f"{webhook_url} did not answer ({type(exc).__name__})"
            return
        self.last_delivery = f"{webhook_url} answered {status}"
        if status >= 300:
            log.warning("sandbox webhook to %s answered %s", webhook_url, status)

    async def _post_signed(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """The answer's status. Through the injected client (a test's, in process), or the
        fake's own aiohttp session: a broadcast's three status webhooks per message are most
        of the fake's work, and an httpx POST cost about five times the CPU of an aiohttp
        one (docs/decisions.md, "The sandbox posts its webhooks through aiohttp"), CPU
        taken from the platform when both share a machine."""
        if self._injected_client is not None:
            injected = await self._injected_client.post(url, content=body, headers=headers)
            return injected.status_code
        if self._own_session is None or self._own_session.closed:
            # Created lazily, on the loop that posts: a FakeGraph is built outside one.
            self._own_session = aiohttp.ClientSession(
                timeout=WEBHOOK_TIMEOUT,
                connector=aiohttp.TCPConnector(limit=WEBHOOK_CONNECTIONS),
            )
        async with self._own_session.post(
            url, data=body, headers=headers, allow_redirects=False
        ) as answer:
            await answer.read()
            return answer.status

    async def aclose(self) -> None:
        """Stop pending status chains and close the webhook client this object created."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None


def create_app(graph: FakeGraph) -> Starlette:
    app = Starlette(
        routes=[*template_routes(), *routes()],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.graph = graph
    return app


def run(host: str, port: int, graph: FakeGraph) -> None:
    """Serve the fake API with uvicorn until interrupted (for a CLI command)."""
    uvicorn.run(create_app(graph), host=host, port=port, log_level="info")
