"""A broadcast recipient follows its message: the provider's status webhooks move the
message (conversation.statuses), and the recipient with it; the sweeper's
`broadcast_recipients` step settles the ones whose message ended without a webhook
(`delivery_unknown`, or a status that came while the driver was still writing)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import DateTime, String, Text, Uuid, and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit import core
from botplatform.kit.clock import utcnow
from botplatform.models import BroadcastRecipient, Message
from botplatform.models.base import table_of
from botplatform.worker.jobs import JobContext

#: A message's status → its recipient's.
MIRRORED = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",
    "failed": "failed",
}
RECONCILE_BATCH = 500

_RCP = table_of(BroadcastRecipient).c
_FOLLOWED = core.unnested(
    "followed",
    ("mids", Uuid),
    ("statuses", String),
    ("codes", String),
    ("titles", Text),
    ("sents", DateTime(timezone=True)),
)
_FOLLOW: dict[str, Any] = {"lease_until": None, "updated_at": bindparam("now")}
#: Each recipient of many messages (PostgreSQL: one statement of arrays, one prepared shape).
_FOLLOW_MANY = (
    update(table_of(BroadcastRecipient))
    .where(_RCP.workspace_id == bindparam("ws"), _RCP.message_id == _FOLLOWED.c.mids)
    .values(
        status=_FOLLOWED.c.statuses,
        error_code=_FOLLOWED.c.codes,
        error_title=_FOLLOWED.c.titles,
        sent_at=_FOLLOWED.c.sents,
        **_FOLLOW,
    )
)
#: The recipient of one message (SQLite, once per message).
_FOLLOW_ONE = (
    update(table_of(BroadcastRecipient))
    .where(_RCP.workspace_id == bindparam("ws"), _RCP.message_id == bindparam("mid"))
    .values(
        status=bindparam("status"),
        error_code=bindparam("code"),
        error_title=bindparam("title"),
        sent_at=bindparam("sent"),
        **_FOLLOW,
    )
)


def is_broadcast(message: Any) -> bool:
    return bool((message.content or {}).get("broadcast_id"))


def following(db: AsyncSession, messages: Sequence[Any]) -> core.Write | None:
    """The write that moves each message's recipient to the message's status (`messages`:
    `Message`s or rows with their id, workspace, status, error and `sent_at`)."""
    rows = [
        {
            "mid": message.id,
            "status": status,
            "code": message.error_code if status == "failed" else None,
            "title": message.error_title if status == "failed" else None,
            "sent": message.sent_at,
        }
        for message in messages
        if (status := MIRRORED.get(message.status)) is not None
    ]
    if not rows:
        return None
    ws, now = messages[0].workspace_id, utcnow()  # one batch, one workspace
    if db.get_bind().dialect.name != "postgresql":
        return _FOLLOW_ONE, [{"ws": ws, "now": now, **row} for row in rows]
    columns = {"mids": "mid", "statuses": "status", "codes": "code", "titles": "title"}
    arrays = {name: [row[key] for row in rows] for name, key in columns.items()}
    return _FOLLOW_MANY, {"ws": ws, "now": now, "sents": [row["sent"] for row in rows], **arrays}


async def reconcile(ctx: JobContext) -> int:
    """Recipients still `sending` whose message has ended (system scope, every workspace)."""
    statement = (
        select(BroadcastRecipient, Message)
        .join(Message, Message.id == BroadcastRecipient.message_id)
        .where(
            BroadcastRecipient.status == "sending",
            and_(Message.status != "sending", Message.status != "queued"),
        )
        .limit(RECONCILE_BATCH)
    )
    rows = (await ctx.db.execute(statement)).all()
    for recipient, message in rows:
        status = MIRRORED.get(message.status)
        if status is None:
            continue
        recipient.status = status
        recipient.sent_at = recipient.sent_at or message.sent_at
        recipient.lease_until = None
        if status == "failed":
            recipient.error_code, recipient.error_title = message.error_code, message.error_title
    return len(rows)
