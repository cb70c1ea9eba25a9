"""The jobs of the message path: process a stored webhook, send an outbound message, fetch
inbound media. Each carries a workspace id and a row id; the rows say what is left to do."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dramatiq import Retry
from sqlalchemy import String, Text, Uuid, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.automation import events as automation_events
from botplatform.bot import cache as bot_cache
from botplatform.bot import runner as bot_runner
from botplatform.channel import cache as channel_cache
from botplatform.channels import batch, choices, delivery, policy, sender
from botplatform.channels.base import (
    ChannelInfo,
    MalformedPayload,
    ProviderSendError,
    dedupe_key_of,
)
from botplatform.channels.messages import (
    CONSENT_EVENTS,
    Content,
    InboundMessage,
    Media,
    MessageDeleted,
    MessageEcho,
    MessageEdited,
    MessageType,
    OutboundMessage,
    SystemEvent,
    Watermark,
)
from botplatform.channels.registry import adapter_for
from botplatform.conversation import service as conversations
from botplatform.conversation.consent import consent_keyword
from botplatform.conversation.repository import recipient_of
from botplatform.events.catalog import MESSAGE_SENT
from botplatform.events.service import emit_message
from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.kit.core import Write
from botplatform.kit.errors import AppError
from botplatform.kit.linger import Arrivals, GroupLinger
from botplatform.kit.logging import get_logger
from botplatform.kit.scoping import enter_workspace, scoped
from botplatform.media.storage import ALLOWED_MIME_TYPES, MediaRejected, check_media, media_key
from botplatform.message.schemas import MessageBody
from botplatform.message.service import queue_outbound
from botplatform.models import (
    Contact,
    ContactIdentity,
    Conversation,
    InboundEvent,
    Message,
)
from botplatform.models.base import UTCDateTime, table_of
from botplatform.template import service as templates
from botplatform.usage import service as usage
from botplatform.worker.jobs import JobContext, enqueue, job
from botplatform.worker.lane import Lane
from botplatform.worker.sweeper import SweepTarget, sweep_step, sweep_target

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

log = get_logger("botplatform.channels")


async def _enter(ctx: JobContext, workspace_id: str, *, generic_plans: bool = False) -> uuid.UUID:
    ws = uuid.UUID(workspace_id)
    await enter_workspace(ctx.db, ws, generic_plans=generic_plans)
    return ws


PROCESS_BATCH_JOB = "process_inbound_events"
STATUS_BATCH_JOB = "process_status_events"
STATUS_LANE = "statuses"
#: A status job that finds its lane full comes back after this long.
STATUS_LANE_RETRY_MS = 200
#: The longest a status batch steps back for a late message path before it runs anyway.
STATUS_STEP_BACK_SECONDS = 0.5


@job("process_inbound_event", max_retries=10, min_backoff_ms=1_000)
async def process_inbound_event(ctx: JobContext, workspace_id: str, event_id: str) -> None:
    """One stored webhook (the sweeper's job, and a batch's fallback): a batch of one."""
    await _process(ctx, workspace_id, [event_id])


@job(PROCESS_BATCH_JOB, max_retries=10, min_backoff_ms=1_000)
async def process_inbound_events(ctx: JobContext, workspace_id: str, event_ids: list[str]) -> None:
    """The stored webhooks of one workspace committed together (one intake group); jobs of
    the same workspace reaching this process at the same moment share one batch."""
    await _BATCHES.join(ctx, workspace_id, event_ids)


@job(STATUS_BATCH_JOB, queue=STATUS_LANE, max_retries=10, min_backoff_ms=1_000)
async def process_status_events(ctx: JobContext, workspace_id: str, event_ids: list[str]) -> None:
    """Webhooks with delivery statuses only (channels/intake.py), batched like the others
    but apart from them, on at most STATUS_WORKER_SHARE of the threads: a broadcast's
    thousands of statuses never hold up a customer's message."""
    settings = ctx.runtime.settings
    share = ctx.runtime.jobs.lane_share(settings.status_worker_share)
    if not STATUS_GATE.enter(settings.worker_threads, share):
        enqueue(ctx.db, STATUS_BATCH_JOB, workspace_id, event_ids, delay_ms=STATUS_LANE_RETRY_MS)
        return
    try:
        # Statuses can wait a moment while the message path runs late (worker/pressure.py).
        await ctx.runtime.jobs.pressure.step_back(STATUS_STEP_BACK_SECONDS)
        await _STATUS_BATCHES.join(ctx, workspace_id, event_ids)
    finally:
        STATUS_GATE.leave()


@dataclass(eq=False)
class _Joined:
    ctx: JobContext
    workspace_id: str
    event_ids: list[str]
    done: asyncio.Future[None]


class _Batches:
    """Group commit on the worker side. Jobs that arrive while a batch is being processed
    wait and make the next batch, per workspace, up to MAX_BATCH_EVENTS; a batch that would
    start small waits a moment for the jobs that follow (`_linger`), and under load the
    batches are large already and nothing waits."""

    def __init__(self) -> None:
        self._waiting: list[_Joined] = []
        self._running = 0
        self._runners: set[asyncio.Task[None]] = set()  # referenced until done
        #: Per workspace, accepted sends whose outcomes ride with its next batch (`_process`).
        self._unwritten: dict[str, list[sender.Accepted]] = defaultdict(list)
        #: Per workspace, the task that writes them itself if no batch comes for them.
        self._lingering: dict[str, asyncio.Task[None]] = {}
        #: Per workspace, when its last jobs came to this process: how long its outcomes
        #: wait for its next batch (`_outcome_wait`). The least recently seen are dropped.
        self._arrivals: OrderedDict[str, Arrivals] = OrderedDict()
        self._filling = GroupLinger()  # a runner waiting for its batch to fill (`_linger`)

    def leave_outcomes(
        self, runtime: Runtime, workspace_id: str, accepted: list[sender.Accepted]
    ) -> None:
        """Hands `accepted` to the workspace's next batch in this process, which writes them
        with its last statement. One waiting already takes them when it starts; otherwise
        they wait for one (`_outcome_wait`), and are then written on their own (a stopping
        worker waits for that: `JobQueue.hold_stop_for`).
        At a steady rate the next batch comes within that time, so an outcome costs no
        transaction of its own (three round trips: BEGIN, UPDATE, COMMIT). Until written,
        each row keeps its committed send marker: a worker killed meanwhile leaves them to
        the status webhook or `delivery_unknown`, never to a second send."""
        self._unwritten[workspace_id] += accepted
        if workspace_id in self._lingering:
            return
        # Also when a batch is waiting already: if it fails before taking them, they are
        # still written.
        wait = self._outcome_wait(workspace_id)
        task = asyncio.create_task(self._write_unless_taken(runtime, workspace_id, wait))
        self._lingering[workspace_id] = task
        runtime.jobs.hold_stop_for(task)  # a stopping worker writes them first

    def _outcome_wait(self, workspace_id: str) -> float:
        """OUTCOME_LINGER_SECONDS; where the workspace's jobs have been coming to this process
        at most OUTCOME_RIDE_SECONDS apart, twice their mean gap (within those two bounds):
        at a steady low rate (a few messages a second, each its own batch) the next batch
        then mostly comes in time to write them."""
        arrivals = self._arrivals.get(workspace_id)
        gap = arrivals.mean_gap() if arrivals is not None else None
        if gap is None or gap > OUTCOME_RIDE_SECONDS:
            return OUTCOME_LINGER_SECONDS
        return min(OUTCOME_RIDE_SECONDS, max(OUTCOME_LINGER_SECONDS, 2 * gap))

    def _job_came(self, workspace_id: str) -> None:
        arrivals = self._arrivals.pop(workspace_id, None) or Arrivals()
        arrivals.arrived()
        self._arrivals[workspace_id] = arrivals  # the most recently seen last
        if len(self._arrivals) > WORKSPACES_TIMED:
            self._arrivals.popitem(last=False)

    async def _write_unless_taken(self, runtime: Runtime, workspace_id: str, wait: float) -> None:
        await asyncio.sleep(wait)
        # Before taking: outcomes left from here on start a timer of their own.
        del self._lingering[workspace_id]
        left = self.take_outcomes(workspace_id)
        if not left:
            return
        try:
            await sender.write_outcomes(runtime, uuid.UUID(workspace_id), left)
        except Exception:  # the rows keep their send markers: settled like a killed worker's
            log.exception("outcomes_not_written", workspace_id=workspace_id, sends=len(left))

    def take_outcomes(self, workspace_id: str) -> list[sender.Accepted]:
        """The outcomes waiting for the workspace's next batch, to be written with it; their
        timer, if any, is stopped (a stopping worker need not wait for it)."""
        lingering = self._lingering.pop(workspace_id, None)
        if lingering is not None:
            lingering.cancel()
        return self._unwritten.pop(workspace_id, [])

    async def join(self, ctx: JobContext, workspace_id: str, event_ids: list[str]) -> None:
        joined = _Joined(ctx, workspace_id, event_ids, asyncio.get_running_loop().create_future())
        self._waiting.append(joined)
        self._filling.arrived()
        self._job_came(workspace_id)
        if self._filling.active and _events(self._waiting) >= LINGER_UNTIL_EVENTS:
            self._filling.end()
        if self._running < CONCURRENT_BATCHES and not self._filling.active:
            self._running += 1
            linger = ctx.runtime.settings.worker_batch_linger_ms / 1000
            runner = asyncio.create_task(self._run_while_waiting(linger))
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)
        await joined.done

    async def _linger(self, seconds: float) -> None:
        """A batch that would start small waits `seconds` for more jobs (no other runner
        starts or takes them meanwhile), or until LINGER_UNTIL_EVENTS wait: a unit of work
        per few messages at a low steady rate; not where the rate is too low for another job
        to come meanwhile (`GroupLinger.pays`)."""
        if not seconds or not self._waiting or _events(self._waiting) >= LINGER_UNTIL_EVENTS:
            return
        if self._filling.pays(seconds):
            await self._filling.wait(seconds)

    async def _run_while_waiting(self, linger_seconds: float) -> None:
        try:
            if self._filling.active:  # started in the step the lingering one did: it takes all
                return
            await self._linger(linger_seconds)
            # Stops while another runner lingers: what waits is that runner's batch, filling.
            while self._waiting and not self._filling.active:
                taken, self._waiting = _take_batch(self._waiting)
                by_workspace: dict[str, list[_Joined]] = defaultdict(list)
                for joined in taken:
                    by_workspace[joined.workspace_id].append(joined)
                for workspace_id, jobs in by_workspace.items():
                    await _run_together(workspace_id, jobs)
        finally:
            self._running -= 1  # in the step that saw nothing waiting (see intake.py)


def _events(waiting: list[_Joined]) -> int:
    return sum(len(joined.event_ids) for joined in waiting)


def _take_batch(waiting: list[_Joined]) -> tuple[list[_Joined], list[_Joined]]:
    total = 0
    for index, joined in enumerate(waiting):
        total += len(joined.event_ids)
        if total > MAX_BATCH_EVENTS and index > 0:
            return waiting[:index], waiting[index:]
    return waiting, []


async def _run_together(workspace_id: str, jobs: list[_Joined]) -> None:
    """A lone job runs in its own unit of work, with its own retries; several share a new
    unit of work, and a failure there sends each event on alone (`_split_up`)."""
    try:
        if len(jobs) == 1:
            await _process(jobs[0].ctx, workspace_id, jobs[0].event_ids)
        else:
            runtime = jobs[0].ctx.runtime
            async with runtime.db.unit_of_work() as db:
                shared = JobContext(runtime, db, "batch", attempt=1, max_attempts=2)
                await _process(shared, workspace_id, [i for job in jobs for i in job.event_ids])
    except BaseException as exc:
        for job in jobs:
            if not job.done.done():
                job.done.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
        return
    for job in jobs:
        if not job.done.done():
            job.done.set_result(None)


#: How long accepted sends' outcomes wait for the workspace's next batch to write them
#: (`_Batches.leave_outcomes`): longer than a lingering batch (WORKER_BATCH_LINGER_MS) and
#: the gap between two batches of one process when the workers take the jobs in turn.
OUTCOME_LINGER_SECONDS = 0.15
#: The longest they wait, where the workspace's jobs come at most this far apart
#: (`_Batches._outcome_wait`): a row says `sending` at most this much longer.
OUTCOME_RIDE_SECONDS = 1.0
#: Workspaces whose job arrivals one process keeps (the least recently seen are dropped).
WORKSPACES_TIMED = 1000
#: A batch that starts with this many events already runs at once, without lingering.
LINGER_UNTIL_EVENTS = 8
#: The most events one batch takes; the rest wait for the next.
MAX_BATCH_EVENTS = 200
#: Batches processed at once by one worker process (while one waits for the database or
#: the provider, the next is being written).
CONCURRENT_BATCHES = 2
_BATCHES = _Batches()
_STATUS_BATCHES = _Batches()
STATUS_GATE = Lane()


async def _process(ctx: JobContext, workspace_id: str, event_ids: list[str]) -> None:
    """One unit of work for the batch (`channels.batch`), then the replies it leased are
    sent from here, after the commit (`channels.sender`). The outcomes of an earlier batch's
    sends that were left to this one are written with its last statement; if this batch
    writes nothing, they are written on their own."""
    riding = _BATCHES.take_outcomes(workspace_id)
    try:
        replies = await _apply_batch(ctx, workspace_id, event_ids, riding)
    except Exception:
        if riding:
            await ctx.db.rollback()
            await sender.write_outcomes(ctx.runtime, uuid.UUID(workspace_id), riding)
        raise
    accepted = await sender.send_leased(ctx.runtime, replies, may_ride=True)
    if accepted:
        _BATCHES.leave_outcomes(ctx.runtime, workspace_id, accepted)


async def _apply_batch(
    ctx: JobContext, workspace_id: str, event_ids: list[str], riding: list[sender.Accepted]
) -> list[sender.LeasedSend]:
    """Applies the batch's events and the riding outcomes, and commits; the replies it
    leased, to send now."""
    # Key lookups and array writes only: generic plans (`enter_workspace` says why).
    ws = await _enter(ctx, workspace_id, generic_plans=True)
    events = await batch.pending_events(ctx.db, ws, [uuid.UUID(i) for i in event_ids])
    items: list[tuple[ChannelInfo, object]] = []
    outcomes: dict[uuid.UUID, str | None] = {}  # event id → None (processed) or its error
    for event in events:
        channel = await channel_cache.get(ctx.db, ws, event.channel_id)  # the process's cache
        if channel is None:
            continue
        try:
            items += [(channel, item) for item in _parse(ctx, channel, event)]
        except MalformedPayload as exc:  # signed but unusable: kept for inspection, not retried
            outcomes[event.id] = str(exc)[:2000]
            log.warning("inbound_malformed", event_id=str(event.id), error=str(exc)[:500])
            continue
        outcomes[event.id] = None
    if not outcomes:  # nothing to apply (a redelivered job): the riding outcomes alone
        if riding:
            await core.together(ctx.db, sender.riding_writes(ctx.db, ws, riding))
            await sender.after_riding(ctx.db, ws, riding)
            await ctx.db.commit()
        return []
    usable = [event_id for event_id, error in outcomes.items() if error is None]
    lease = timedelta(seconds=ctx.runtime.settings.send_lease_seconds)
    # Replies the per-item path decides are leased to this batch (delivery.Leases).
    leases = delivery.open_leases(ctx.db, utcnow() + lease)
    closing = [_marking(ctx.db, ws, outcomes), *sender.riding_writes(ctx.db, ws, riding)]
    try:
        # Counted in the same transaction as the messages: a retried job never counts twice.
        outcome = await batch.apply_items(
            ctx.db,
            ws,
            lease,
            items,
            lambda channel, item: _apply(ctx, channel, item),
            lambda channel, message, sender_id, opens: _answer(
                ctx, channel, message, sender_id, opens
            ),
            closing=closing,  # with the batch's last writes
        )
        await sender.after_riding(ctx.db, ws, riding)
        outcome.replies += [sender.leased_reply(reply) for reply in leases.replies]
    except Exception as exc:
        if len(outcomes) > 1:
            # One event the batch cannot take must not hold back the others: each goes on
            # alone, with its own retries (and, in the end, its own failure).
            if riding:  # written on their own, before the batch's transaction is gone
                await ctx.db.rollback()
                await sender.write_outcomes(ctx.runtime, ws, riding)
                riding.clear()
            await _split_up(ctx, ws, list(outcomes), exc)
            return []
        if ctx.is_last_attempt and usable:
            await _give_up(ctx, ws, usable[0], exc)
        raise
    await ctx.db.commit()  # the batch is durable before any reply leaves
    await _acknowledge(ctx, items)
    return outcome.replies


async def _acknowledge(ctx: JobContext, items: list[tuple[ChannelInfo, object]]) -> None:
    """Tells the provider, once the events are stored, what it waits to hear about them
    (Telegram: a button tap answered, so the client's spinner stops). Channels with nothing
    to acknowledge have no `acknowledge`."""
    by_channel: dict[uuid.UUID, tuple[ChannelInfo, list[object]]] = {}
    for channel, item in items:
        by_channel.setdefault(channel.id, (channel, []))[1].append(item)
    for channel, events in by_channel.values():
        adapter = adapter_for(channel, ctx.runtime.settings, ctx.runtime.http)
        acknowledge = getattr(adapter, "acknowledge", None)
        if acknowledge is not None:
            await acknowledge(events)


_EVENTS = table_of(InboundEvent)
_MARKED = (
    func.unnest(
        bindparam("event_ids", type_=postgresql.ARRAY(Uuid)),
        bindparam("statuses", type_=postgresql.ARRAY(String)),
        bindparam("errors", type_=postgresql.ARRAY(Text)),
    )
    .table_valued("id", "status", "error")
    .render_derived(name="marked")
)
_MARK_EVENTS = {
    # One row of arrays on PostgreSQL (one shape whatever the batch's size, so it can run
    # with the batch's other last writes, `core.together`), rows on SQLite.
    "postgresql": update(_EVENTS)
    .where(_EVENTS.c.workspace_id == bindparam("ws"), _EVENTS.c.id == _MARKED.c.id)
    .values(
        status=_MARKED.c.status,
        error=_MARKED.c.error,
        processed_at=case(
            (_MARKED.c.status == "processed", bindparam("processed", type_=UTCDateTime)),
            else_=None,
        ),
        updated_at=bindparam("now"),
    ),
    "sqlite": update(_EVENTS)
    .where(_EVENTS.c.workspace_id == bindparam("ws"), _EVENTS.c.id == bindparam("event_id"))
    .values(
        status=bindparam("new_status"),
        error=bindparam("new_error"),
        processed_at=bindparam("processed_at"),
        updated_at=bindparam("now"),
    ),
}


def _marking(db: AsyncSession, ws: uuid.UUID, outcomes: dict[uuid.UUID, str | None]) -> Write:
    """Every event of the batch `processed` or `failed` with its reason, in one statement."""
    now = utcnow()
    if db.get_bind().dialect.name == "postgresql":
        parameters = {
            "ws": ws,
            "now": now,
            "processed": now,
            "event_ids": list(outcomes),
            "statuses": ["processed" if error is None else "failed" for error in outcomes.values()],
            "errors": list(outcomes.values()),
        }
        return _MARK_EVENTS["postgresql"], parameters
    rows = [
        {
            "ws": ws,
            "event_id": event_id,
            "new_status": "processed" if error is None else "failed",
            "new_error": error,
            "processed_at": now if error is None else None,
            "now": now,
        }
        for event_id, error in outcomes.items()
    ]
    return _MARK_EVENTS["sqlite"], rows


async def _split_up(
    ctx: JobContext, ws: uuid.UUID, event_ids: list[uuid.UUID], exc: Exception
) -> None:
    log.warning("inbound_batch_split", events=len(event_ids), error=f"{type(exc).__name__}: {exc}")
    await ctx.db.rollback()
    async with ctx.runtime.db.unit_of_work() as db:
        for event_id in event_ids:
            enqueue(db, "process_inbound_event", str(ws), str(event_id))


def _parse(ctx: JobContext, channel: ChannelInfo, event: Any) -> list[object]:
    """The event's normalized items, or `MalformedPayload`. Parsing is pure (no I/O, no
    clock): whatever it raises, it raises again on every retry, so any failure is final."""
    body = event.body.encode()
    adapter = adapter_for(channel, ctx.runtime.settings, ctx.runtime.http)
    if dedupe_key_of(adapter, body) != event.dedupe_key:
        # The stored text is not the bytes received (see intake's `_text`).
        raise MalformedPayload("not usable: the body is not valid UTF-8 or contains NUL")
    try:
        return list(adapter.parse(body))
    except MalformedPayload:
        raise
    except Exception as exc:
        raise MalformedPayload(f"not parsable: {type(exc).__name__}: {str(exc)[:200]}") from exc


async def _give_up(ctx: JobContext, ws: uuid.UUID, event_id: uuid.UUID, exc: Exception) -> None:
    """The last attempt failed too: the event ends `failed` (in its own transaction, as this
    job's rolls back), so the sweeper stops sending it again; the job itself goes on to
    `dead_jobs` with its traceback."""
    await ctx.db.rollback()  # on SQLite its open write would block the one below
    async with ctx.runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        await db.execute(
            update(InboundEvent)
            .where(InboundEvent.workspace_id == ws, InboundEvent.id == event_id)
            .values(status="failed", error=f"gave up: {type(exc).__name__}: {exc}"[:2000])
        )


async def _apply(ctx: JobContext, channel: ChannelInfo, item: object) -> int:
    """Applies one parsed event; 1 when it stored a new inbound message (to be counted)."""
    db = ctx.db
    if isinstance(item, InboundMessage):
        # A live bot will lock the conversation: its first read takes the lock (the cache
        # answers, no query).
        live = await bot_cache.live_for_channel(db, channel.workspace_id, channel.id)
        message = await conversations.record_inbound(db, channel, item, lock=bool(live))
        if message is None:  # a provider's redelivery
            return 0
        delivery.learn_recipient(db, message.conversation_id, item.sender_id)
        if message.media_status == "pending":
            enqueue(db, FETCH_MEDIA_JOB, str(channel.workspace_id), str(message.id))
        choices.queue(db, channel, message)
        await _answer(ctx, channel, message, item.sender_id)
        return 1
    # (Status updates never come here: a batch applies them all at once, conversation.statuses.)
    if isinstance(item, MessageEdited):
        await conversations.apply_edit(db, channel, item)
    elif isinstance(item, MessageDeleted):
        await conversations.apply_delete(db, channel, item)
    elif isinstance(item, MessageEcho):
        await conversations.record_echo(db, channel, item)
    elif isinstance(item, Watermark):
        await conversations.apply_watermark(db, channel, item)
    elif isinstance(item, SystemEvent) and item.kind in CONSENT_EVENTS:
        await _provider_consent(db, channel, item)
    elif isinstance(item, SystemEvent) and await templates.apply_webhook(db, channel, item):
        return 0  # a template's status, quality or category: kept on the template's row
    else:  # other system events (account changes...) are logged for now
        log.info("channel_event", channel_id=str(channel.id), kind=type(item).__name__)
    return 0


async def _answer(
    ctx: JobContext,
    channel: ChannelInfo,
    message: Message,
    sender_id: str,
    opens_conversation: bool | None = None,
) -> None:
    """A new inbound message, stored: the bot's turn, or else the channel's auto-reply."""
    runtime, db = ctx.runtime, ctx.db
    if not await bot_runner.handle_inbound(
        runtime, db, channel, message, sender_id, opens_conversation=opens_conversation
    ):
        await _auto_reply(db, channel, message)


async def _provider_consent(db: AsyncSession, channel: ChannelInfo, event: SystemEvent) -> None:
    """The provider says the person blocked the channel (or came back): their consent in the
    ledger, as a STOP / START would. A person never seen has no contact to change."""
    if event.sender_id is None:
        return
    contact = await _contact_of(db, channel, event.sender_id)
    if contact is not None:
        action = CONSENT_EVENTS[event.kind]
        if (action == "opt_out") != contact.opted_out:
            await conversations.record_consent(
                db, contact, action, "provider", channel.id, event.kind
            )


async def _contact_of(db: AsyncSession, channel: ChannelInfo, external_id: str) -> Contact | None:
    identity = (
        await db.execute(
            scoped(ContactIdentity, channel.workspace_id).where(
                ContactIdentity.provider == channel.provider,
                ContactIdentity.external_id == external_id,
            )
        )
    ).scalar_one_or_none()
    return await db.get(Contact, identity.contact_id) if identity is not None else None


async def _auto_reply(db: AsyncSession, channel: ChannelInfo, message: Message) -> None:
    """The channel's fixed answer to every inbound text (an away message, or the minimal
    keyword-free reply used until bots land). STOP/START and opted-out contacts get none."""
    text = channel.config.get("auto_reply")
    if not text or message.type != "text" or consent_keyword(message.text):
        return
    conversation = await db.get(Conversation, message.conversation_id)
    contact = await db.get(Contact, conversation.contact_id) if conversation else None
    if conversation is None or contact is None or contact.opted_out:
        return
    try:
        await queue_outbound(
            db,
            channel=channel,
            contact=contact,
            conversation=conversation,
            body=MessageBody(type="text", text=text),
            idempotency_key=f"auto:{message.id}",
            sender_user_id=None,
        )
    except policy.PolicyRefused:  # e.g. a message older than the 24-hour window: no answer
        return


CLAIMED, TAKEN, OVER_QUOTA = "claimed", "taken", "over_quota"


async def _claim(ctx: JobContext, ws: uuid.UUID, message_id: uuid.UUID) -> tuple[str, datetime]:
    """Leases the message to this worker with one conditional UPDATE (atomic on both
    databases), in its own transaction: of several copies of the job, one sends (CLAIMED),
    the others find it TAKEN. A row whose request may already have left (its
    `send_attempted_at` marker is set) is never claimed again (channels/delivery.py). The
    first claim also counts the message against the plan's monthly quota in the same
    transaction; over it, the row ends `failed` (OVER_QUOTA). Returns the outcome and the
    lease written, which fences the marker."""
    now = utcnow()
    # The lease outlives the provider call's timeout: two live workers never send one row.
    lease_until = now + timedelta(seconds=ctx.runtime.settings.send_lease_seconds)
    async with ctx.runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        result = await db.execute(
            update(Message)
            .where(Message.workspace_id == ws, Message.id == message_id, delivery.claimable(now))
            .values(status="sending", lease_until=lease_until, attempts=Message.attempts + 1)
            .returning(Message.attempts)
        )
        attempts = result.scalar_one_or_none()
        if attempts is None:
            return TAKEN, lease_until
        # Counted once per message: a retry or a re-claimed lease has attempts > 1.
        refused = await usage.reserve_outbound(db, ws) if attempts == 1 else None
        if refused is None:
            return CLAIMED, lease_until
        await _fail(db, ws, message_id, refused)
        return OVER_QUOTA, lease_until


async def _fail(db: AsyncSession, ws: uuid.UUID, message_id: uuid.UUID, error: AppError) -> None:
    """Final: the row is `failed` with the refusal's code, and never retried."""
    await db.execute(
        update(Message)
        .where(Message.workspace_id == ws, Message.id == message_id)
        .values(**delivery.failed_values(error.code, error.message))
    )
    message = await db.get(Message, message_id, populate_existing=True)
    if message is not None:
        await emit_message(db, "message.failed", message)


async def _finish(
    ctx: JobContext,
    ws: uuid.UUID,
    message_id: uuid.UUID,
    *,
    event: str | None = None,
    held: datetime | None = None,
    **values: object,
) -> None:
    """Writes `values` to the row (with `event`, emitted from the row as updated). `held`:
    only while this job's lease (that value) still holds it, for changes made before the
    request left — a row re-claimed meanwhile belongs to its new holder."""
    async with ctx.runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        change = (
            update(Message)
            .where(Message.workspace_id == ws, Message.id == message_id)
            .values(**values)
        )
        if held is not None:
            change = change.where(delivery.held_by(held))
        if event is None:
            await db.execute(change)
            return
        # The outcome, to webhooks and live dashboards: the row as updated, in the same
        # statement (RETURNING) rather than read again.
        returning = select(Message).from_statement(change.returning(Message))
        message = (
            await db.execute(returning, execution_options={"populate_existing": True})
        ).scalar_one_or_none()
        if message is not None:
            contact_id = await emit_message(db, event, message)
            if event == MESSAGE_SENT:  # rules on message.sent run at the same moment
                await automation_events.message_sent(db, message, contact_id)


async def _recipient(db: AsyncSession, channel: ChannelInfo, contact_id: uuid.UUID) -> str:
    return await recipient_of(db, channel.workspace_id, contact_id, channel.provider)


@job("send_message", max_retries=8, min_backoff_ms=2_000, max_backoff_ms=600_000)
async def send_message(ctx: JobContext, workspace_id: str, message_id: str) -> None:
    """Sends one outbound message at most once: the row is leased before the provider call
    and marked sent right after; a copy of this job finds it leased or sent."""
    ws, row_id = await _enter(ctx, workspace_id), uuid.UUID(message_id)
    claim, lease_until = await _claim(ctx, ws, row_id)
    if claim == OVER_QUOTA:
        return
    if claim == TAKEN:
        await _retry_after_lease(ctx, row_id)
        return
    loaded = await _load_for_send(ctx, row_id)
    # Reads done: end this transaction before any waiting or network I/O (on SQLite an open
    # write transaction holds the database's single write lock).
    await ctx.db.commit()
    if loaded is None:
        return
    refused = loaded.refused
    if refused is not None:
        values = delivery.failed_values(refused.code, refused.message)
        await _finish(ctx, ws, row_id, event="message.failed", held=lease_until, **values)
        return
    await _deliver(ctx, loaded, lease_until)


async def _retry_after_lease(ctx: JobContext, row_id: uuid.UUID) -> None:
    """Another copy holds the row. Only a lease without the marker can still end with the
    row claimable (its holder may die before the request leaves): try again after it. A row
    with the marker is settled by its status webhook or the sweeper, never by a resend."""
    current = await ctx.db.get(Message, row_id)
    if current is None or current.status != "sending" or current.lease_until is None:
        return
    if not delivery.awaits_outcome(current):
        wait_ms = int((current.lease_until - utcnow()).total_seconds() * 1000)
        raise Retry(delay=max(wait_ms, 0) + 500)


@dataclass(frozen=True)
class _Loaded:
    """What sending a claimed row takes, read once after the claim."""

    message: Message
    channel: ChannelInfo
    contact_id: uuid.UUID
    recipient_id: str
    refused: policy.PolicyRefused | None  # the policy says no (now): failed, never sent


async def _load_for_send(ctx: JobContext, row_id: uuid.UUID) -> _Loaded | None:
    message = await ctx.db.get(Message, row_id, populate_existing=True)
    if message is None:
        return None
    conversation = await ctx.db.get(Conversation, message.conversation_id)
    channel = await channel_cache.get(ctx.db, message.workspace_id, message.channel_id)
    contact = await ctx.db.get(Contact, conversation.contact_id) if conversation else None
    if conversation is None or channel is None or contact is None:
        return None
    refused = None
    try:
        tag = (message.content or {}).get("request", {}).get("tag")
        policy.check(channel, contact, conversation, message.type, tag)
    except policy.PolicyRefused as exc:
        refused = exc
    recipient = await _recipient(ctx.db, channel, contact.id)
    return _Loaded(message, channel, contact.id, recipient, refused)


async def _deliver(ctx: JobContext, loaded: _Loaded, lease_until: datetime) -> None:
    """Through the batched sender (`channels.sender`), as a batch's replies go: the send
    rate, the request, the outcome with its events, rules and opt-out. The retries are this
    job's own (its backoff, or exactly the provider's Retry-After)."""
    message = loaded.message
    # Committed before the request leaves: if this worker dies from here on, nobody sends the
    # row again. Not marked: another worker claimed it after our lease ran out.
    if not await delivery.commit_attempt(
        ctx.runtime.db, message.workspace_id, [message.id], lease_until
    ):
        return
    send = sender.leased_send(
        message, loaded.channel, loaded.contact_id, loaded.recipient_id, lease_until
    )
    result = await sender.send_for_job(ctx.runtime, send, last_attempt=ctx.is_last_attempt)
    if result.status == "later":  # no send slot came: it never left, back to `queued`
        raise Retry(delay=1000)
    if result.status == "unknown":  # no answer: the marker stays, its status webhook decides
        log.warning("send_outcome_unknown", message_id=str(message.id))
    elif result.status == "retry":  # refused for now: `queued` again, this job tries again
        if result.retry_after is not None:  # the provider named the wait (429 Retry-After)
            raise Retry(delay=int(result.retry_after * 1000))
        raise SendRefusedForNow(f"{result.error_code}: {result.error_title}")


class SendRefusedForNow(Exception):
    """The provider refused a send for now: the send job tries again with its backoff."""


MARK_READ_JOB = "mark_read"


@job(MARK_READ_JOB, max_retries=3, min_backoff_ms=2_000)
async def mark_read(ctx: JobContext, workspace_id: str, conversation_id: str) -> None:
    """Tells the provider the business has read the conversation (WhatsApp: blue ticks on
    the customer's latest message)."""
    ws = await _enter(ctx, workspace_id)
    latest = (
        await ctx.db.execute(
            scoped(Message, ws)
            .where(
                Message.conversation_id == uuid.UUID(conversation_id),
                Message.direction == "inbound",
                Message.provider_message_id.is_not(None),
            )
            # The provider's timestamps have whole seconds: of two messages in one second, the
            # one stored last is the customer's latest.
            .order_by(Message.created_at.desc(), Message.updated_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    channel = await channel_cache.get(ctx.db, ws, latest.channel_id) if latest else None
    if latest is None or channel is None or latest.provider_message_id is None:
        return
    # Messenger's mark_seen names the customer, WhatsApp's the message.
    conversation = await ctx.db.get(Conversation, latest.conversation_id)
    recipient = await _recipient(ctx.db, channel, conversation.contact_id) if conversation else ""
    receipt = OutboundMessage(
        recipient_id=recipient,
        content=Content(type=MessageType.TEXT),
        idempotency_key=f"read:{latest.id}",
        mark_read=latest.provider_message_id,
    )
    await ctx.db.commit()  # nothing held open across the provider call
    try:
        await adapter_for(channel, ctx.runtime.settings, ctx.runtime.http).send(receipt)
    except ProviderSendError as exc:
        if exc.retryable and not ctx.is_last_attempt:
            raise
        log.info("mark_read_failed", code=exc.code)


FETCH_MEDIA_JOB = batch.FETCH_MEDIA_JOB


@job(FETCH_MEDIA_JOB, max_retries=6, min_backoff_ms=2_000)
async def fetch_media(ctx: JobContext, workspace_id: str, message_id: str) -> None:
    """Inbound media: provider id → bytes → checked → stored under a content-addressed key."""
    ws = await _enter(ctx, workspace_id)
    message = await ctx.db.get(Message, uuid.UUID(message_id))
    if message is None or message.media_status != "pending":
        return
    channel = await channel_cache.get(ctx.db, ws, message.channel_id)
    assert channel is not None
    fields = message.content.get("media") or {}
    media = Media(**{k: v for k, v in fields.items() if k in Media.__dataclass_fields__})
    row_id = message.id
    await ctx.db.commit()  # no transaction held across the download
    adapter = adapter_for(channel, ctx.runtime.settings, ctx.runtime.http)
    try:
        data, mime = await adapter.fetch_media(media)
        mime = check_media(data, mime or media.mime_type)
    except ProviderSendError as exc:
        if exc.retryable and not ctx.is_last_attempt:
            raise
        await _finish(ctx, ws, row_id, media_status="failed")
        return
    except MediaRejected as exc:
        await _finish(ctx, ws, row_id, media_status="rejected", media_mime=str(exc)[:100])
        return
    key = media_key(ws, hashlib.sha256(data).hexdigest(), ALLOWED_MIME_TYPES[mime])
    await ctx.runtime.media.put(key, data, mime)
    await _finish(ctx, ws, row_id, media_key=key, media_mime=mime, media_status="stored")


sweep_target(
    SweepTarget(
        name="inbound_events",
        model=InboundEvent,
        is_pending=lambda: InboundEvent.status == "pending",
        touched_at=InboundEvent.updated_at,
        job="process_inbound_event",
        with_workspace=True,
    )
)
sweep_target(
    SweepTarget(
        name="outbound_messages",
        model=Message,
        is_pending=lambda: delivery.claimable(utcnow()),
        touched_at=Message.updated_at,
        job="send_message",
        with_workspace=True,
    )
)


async def _expire_unknown_sends(ctx: JobContext) -> int:
    return await delivery.expire_unknown(ctx.db, ctx.runtime.settings.send_unknown_grace_seconds)


sweep_step("delivery_unknown", _expire_unknown_sends)
