"""Writing audit entries: one per state-changing action, in the action's own transaction, so
an entry exists exactly when the change committed. Secrets never enter the log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.audit.chain import GENESIS_HASH, Break, entry_hash, first_break
from botplatform.db import after_commit
from botplatform.kit.clock import utcnow
from botplatform.kit.logging import get_logger
from botplatform.models import AuditHead, AuditLog

audit_file = get_logger("botplatform.audit")
REDACTED = "[redacted]"
_SECRET_WORDS = ("password", "secret", "token", "key_hash", "code", "otp")


@dataclass(frozen=True)
class Actor:
    type: str  # user | api_key | system | anonymous
    id: str | None
    label: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None


def redact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: REDACTED if any(word in key.lower() for word in _SECRET_WORDS) else value
        for key, value in values.items()
    }


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """`{field: {"before": …, "after": …}}` for the fields that changed, secrets redacted."""
    changed = {
        key: {"before": before.get(key), "after": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }
    return {
        key: {"before": REDACTED, "after": REDACTED}
        if any(word in key.lower() for word in _SECRET_WORDS)
        else value
        for key, value in changed.items()
    }


async def _next_link(db: AsyncSession) -> tuple[int, str]:
    # Updating the head row first serialises appends across transactions and processes.
    result = await db.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.hash)
    )
    row = result.first()
    if row is None:  # an empty database that skipped the migration's genesis row
        db.add(AuditHead(id=1, seq=1, hash=GENESIS_HASH))
        await db.flush()
        return 1, GENESIS_HASH
    return int(row[0]), str(row[1])


async def record(
    db: AsyncSession,
    actor: Actor,
    action: str,
    *,
    workspace_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    changes: Mapping[str, Any] | None = None,
) -> AuditLog:
    seq, prev_hash = await _next_link(db)
    entry = AuditLog(
        id=uuid.uuid4(),
        seq=seq,
        workspace_id=workspace_id,
        created_at=utcnow(),
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        ip=actor.ip,
        user_agent=(actor.user_agent or "")[:500] or None,
        request_id=actor.request_id,
        changes=json.loads(json.dumps(redact(changes or {}), default=str)),
        prev_hash=prev_hash,
    )
    entry.hash = entry_hash(entry, prev_hash)
    await db.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=entry.hash))
    db.add(entry)
    await db.flush()
    line = {
        field: getattr(entry, field)
        for field in (
            "seq",
            "action",
            "actor_type",
            "actor_id",
            "actor_label",
            "target_type",
            "target_id",
            "ip",
            "changes",
            "hash",
        )
    }
    line["workspace_id"] = str(workspace_id) if workspace_id else None
    after_commit(db, lambda: audit_file.info("audit", **line))
    return entry


async def verify(db: AsyncSession, batch: int = 1000) -> tuple[int, Break | None]:
    """Walks the whole chain; returns how many entries were checked and the first break."""
    checked, prev, seq = 0, GENESIS_HASH, 1
    while True:
        entries = list(
            (
                await db.execute(
                    select(AuditLog).where(AuditLog.seq >= seq).order_by(AuditLog.seq).limit(batch)
                )
            ).scalars()
        )
        if not entries:
            break
        broken = first_break(entries, prev, seq)
        if broken is not None:
            return checked, broken
        checked += len(entries)
        prev, seq = entries[-1].hash, entries[-1].seq + 1
    head = await db.get(AuditHead, 1)
    if head is not None and head.seq != seq - 1:
        return checked, Break(
            seq, None, f"entries after {seq - 1} are missing (head says {head.seq})"
        )
    return checked, None
