"""Declaring jobs and queueing them from a unit of work.

    @job(max_retries=8)
    async def send_email(ctx: JobContext, email_id: str) -> None: ...

    enqueue(db, "send_email", str(email.id))   # sent only if `db` commits

A job gets its own database session (`ctx.db`), committed when the job returns and rolled
back when it raises; jobs it enqueues leave only after that commit. Delivery is at least once,
so every job must be idempotent: it carries ids, and the rows decide what is left to do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.worker.queues import QUEUES

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

PENDING_JOBS = "pending_jobs"


@dataclass(frozen=True)
class PendingJob:
    name: str
    args: tuple[Any, ...]
    delay_ms: int | None = None


@dataclass
class JobContext:
    runtime: Runtime
    db: AsyncSession
    message_id: str
    attempt: int  # 1 for the first try
    max_attempts: int

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


JobFunction = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: JobFunction
    queue: str = "default"
    max_retries: int = 5
    min_backoff_ms: int = 1_000
    max_backoff_ms: int = 3_600_000
    time_limit_ms: int = 600_000
    system: bool = False  # cross-tenant work: exempt from row-level security


#: Every declared job, by name. Filled when the modules in `TASK_MODULES` are imported.
REGISTRY: dict[str, JobSpec] = {}

#: The modules that declare jobs; importing them fills REGISTRY.
TASK_MODULES = [
    "botplatform.email.tasks",
    "botplatform.worker.sweeper",
    "botplatform.channels.tasks",
    "botplatform.channels.profile",
    "botplatform.channels.actions",
    "botplatform.channels.choices",
    "botplatform.ai.tasks",
    "botplatform.webhook.tasks",
    "botplatform.automation.tasks",
    "botplatform.bot.tasks",
    "botplatform.channels.webchat.tasks",
    "botplatform.privacy.tasks",
    "botplatform.branding.tasks",
    "botplatform.retention.tasks",
    "botplatform.broadcast.tasks",
    "botplatform.backup.tasks",
    "botplatform.analytics.tasks",
]


def job(
    name: str | None = None,
    *,
    queue: str = "default",
    max_retries: int = 5,
    min_backoff_ms: int = 1_000,
    max_backoff_ms: int = 3_600_000,
    time_limit_ms: int = 600_000,
    system: bool = False,
) -> Callable[[JobFunction], JobFunction]:
    """Declares an async job. Retries back off exponentially with jitter between
    `min_backoff_ms` and `max_backoff_ms`; after `max_retries` it lands in `dead_jobs`."""

    if queue not in QUEUES:  # `queue status` lists QUEUES without importing the jobs
        raise ValueError(f"queue {queue!r} is not in worker.queues.QUEUES")

    def register(fn: JobFunction) -> JobFunction:
        spec = JobSpec(
            name or fn.__name__,
            fn,
            queue,
            max_retries,
            min_backoff_ms,
            max_backoff_ms,
            time_limit_ms,
            system,
        )
        if spec.name in REGISTRY and REGISTRY[spec.name].fn is not fn:
            raise ValueError(f"job {spec.name!r} is declared twice")
        REGISTRY[spec.name] = spec
        return fn

    return register


def enqueue(db: AsyncSession, name: str, *args: Any, delay_ms: int | None = None) -> None:
    """Queues job `name` to be sent when `db` commits; a rollback drops it."""
    if name not in REGISTRY:
        raise KeyError(f"unknown job {name!r}")
    db.info.setdefault(PENDING_JOBS, []).append(PendingJob(name, args, delay_ms))


def take_pending(db: AsyncSession) -> list[PendingJob]:
    pending: list[PendingJob] = db.info.pop(PENDING_JOBS, [])
    return pending


def load_task_modules() -> None:
    import importlib

    for module in TASK_MODULES:
        importlib.import_module(module)
