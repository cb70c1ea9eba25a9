"""The job queues by name, and how deep each is in Redis — without dramatiq, the job registry
or the models, so `botplatform queue status` answers in well under a second of CPU.

`jobs.job()` refuses a queue not listed here, so this list and the declared jobs cannot drift
apart; `JobQueue.depths` reads Redis through `redis_depth` too (one reading of the keys)."""

from __future__ import annotations

from typing import Any

NAMESPACE = "botplatform"  # dramatiq's key prefix for our broker
QUEUES = ("default", "webhooks", "broadcasts", "statuses")
#: The order in which a worker process runs the jobs it has taken in (dramatiq's work queue is
#: ordered by the actor's priority, lowest first, then by arrival): the message path first,
#: so a customer's reply never waits behind a flood of delivery statuses or broadcast slices.
PRIORITIES = {"default": 0, "webhooks": 10, "statuses": 20, "broadcasts": 30}
#: The bulk lanes: a broadcast's slices and the flood of delivery statuses it brings back. A
#: `botplatform worker` runs them in a niced child process of its own (`WORKER_BULK_APART`),
#: so the kernel gives the message path's process the CPU first (worker/bulk.py).
BULK_QUEUES = frozenset({"broadcasts", "statuses"})
#: The message path: customers' messages, replies, bots, outgoing webhooks.
MESSAGE_QUEUES = frozenset(QUEUES) - BULK_QUEUES


def delay_queue(queue: str) -> str:
    """dramatiq's name for a queue's delayed messages (`dramatiq.common.dq_name`)."""
    return f"{queue}.DQ"


def redis_depth(client: Any, queue: str, namespace: str = NAMESPACE) -> dict[str, int]:
    """Waiting, delayed, in flight and failed (dead-lettered by the broker) messages of one
    queue, read from the keys dramatiq's Redis broker keeps (a sync `redis.Redis` client)."""
    prefix = f"{namespace}:"

    def acked(name: str) -> int:
        keys = client.scan_iter(match=f"{prefix}__acks__.*.{name}", count=500)
        return sum(int(client.scard(key)) for key in keys)

    delayed = delay_queue(queue)
    return {
        "waiting": int(client.llen(prefix + queue)),
        "delayed": int(client.llen(prefix + delayed)) + acked(delayed),
        "in_flight": acked(queue),
        "failed": int(client.zcard(f"{prefix}{queue}.XQ")),
    }


def redis_depths(url: str) -> dict[str, dict[str, int]]:
    """Every queue's depth on the broker at `url`."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    try:
        return {queue: redis_depth(client, queue) for queue in QUEUES}
    finally:
        client.close()
