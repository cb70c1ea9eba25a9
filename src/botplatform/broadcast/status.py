"""A broadcast recipient follows its message: the provider's status webhooks move the
message (conversation.service.apply_status), and the recipient with it; the sweeper's
`broadcast_recipients` step settles the ones whose message ended without a webhook
(`delivery_unknown`, or a status that came while the driver was still writing)."""

from __future__ import annotations

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.models import BroadcastRecipient, Message
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


def is_broadcast(message: Message) -> bool:
    return bool((message.content or {}).get("broadcast_id"))


async def mirror(db: AsyncSession, message: Message) -> None:
    """Called where a status webhook moved a broadcast's message (one UPDATE)."""
    status = MIRRORED.get(message.status)
    if status is None:
        return
    await db.execute(
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.workspace_id == message.workspace_id,
            BroadcastRecipient.message_id == message.id,
        )
        .values(
            status=status,
            error_code=message.error_code if status == "failed" else None,
            error_title=message.error_title if status == "failed" else None,
            sent_at=message.sent_at,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )


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
