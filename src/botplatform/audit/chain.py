"""The hash chain: each entry's hash covers its own fields and the previous entry's hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from botplatform.models import AuditLog

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "seq", "workspace_id", "created_at", "actor_type", "actor_id", "actor_label", "action",
    "target_type", "target_id", "ip", "user_agent", "request_id", "changes",
)  # fmt: skip


def canonical(entry: AuditLog) -> bytes:
    fields: dict[str, Any] = {name: getattr(entry, name) for name in HASHED_FIELDS}
    fields["workspace_id"] = str(entry.workspace_id) if entry.workspace_id else None
    fields["created_at"] = entry.created_at.isoformat(timespec="microseconds")
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str).encode()


def entry_hash(entry: AuditLog, prev_hash: str) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(entry)).hexdigest()


@dataclass(frozen=True)
class Break:
    seq: int
    entry_id: str | None
    reason: str


def first_break(
    entries: list[AuditLog], expected_prev: str = GENESIS_HASH, expected_seq: int = 1
) -> Break | None:
    """The first place where the chain does not hold: a gap in `seq` (a deleted entry), a
    `prev_hash` that is not the previous hash, or a `hash` that does not match the fields."""
    for entry in entries:
        if entry.seq != expected_seq:
            return Break(
                expected_seq, None, f"entry {expected_seq} is missing (next is {entry.seq})"
            )
        if entry.prev_hash != expected_prev:
            return Break(entry.seq, str(entry.id), "prev_hash does not match the previous entry")
        if entry.hash != entry_hash(entry, entry.prev_hash):
            return Break(entry.seq, str(entry.id), "hash does not match the entry's fields")
        expected_prev, expected_seq = entry.hash, entry.seq + 1
    return None
