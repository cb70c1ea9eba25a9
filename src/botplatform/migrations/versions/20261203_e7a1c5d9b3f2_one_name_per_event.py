"""one name per event: automation rules' `message.created` becomes the catalog's
`message.received` / `message.sent`

Revision ID: e7a1c5d9b3f2
Revises: b4d6f8a0c2e1
Create Date: 2026-12-03 10:00:00.000000

A rule whose conditions say the direction (a `message_direction` leaf at the top, alone or in
an `all` group) takes the matching name. A rule without one ran on both directions: it becomes
`message.received` and a copy of it (name + " (sent)") `message.sent`, so it keeps running on
both. Pending automation events take the name of their message's direction.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "e7a1c5d9b3f2"
down_revision: str | Sequence[str] | None = "b4d6f8a0c2e1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "message.created"
RECEIVED, SENT = "message.received", "message.sent"

rules = sa.table(
    "automation_rules",
    sa.column("id", sa.Uuid),
    sa.column("workspace_id", sa.Uuid),
    sa.column("name", sa.String),
    sa.column("description", sa.String),
    sa.column("event", sa.String),
    sa.column("enabled", sa.Boolean),
    sa.column("position", sa.Integer),
    sa.column("conditions", sa.JSON),
    sa.column("actions", sa.JSON),
    sa.column("created_by_id", sa.Uuid),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
events = sa.table(
    "automation_events",
    sa.column("event", sa.String),
    sa.column("status", sa.String),
    sa.column("message_id", sa.Uuid),
)
messages = sa.table("messages", sa.column("id", sa.Uuid), sa.column("direction", sa.String))


def _direction(conditions: Any) -> str | None:
    """inbound/outbound when the rule only matches that direction, else None."""
    leaves = [conditions] if isinstance(conditions, dict) and "type" in conditions else []
    if isinstance(conditions, dict) and isinstance(conditions.get("all"), list):
        leaves = [leaf for leaf in conditions["all"] if isinstance(leaf, dict)]
    for leaf in leaves:
        if leaf.get("type") == "message_direction" and leaf.get("value") in ("inbound", "outbound"):
            return str(leaf["value"])
    return None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":  # the tables force row-level security
        op.execute("SET LOCAL app.bypass_rls = 'on'")
    now = datetime.now(UTC)
    if bind.dialect.name == "sqlite":  # stored as naive UTC there (models.base.UTCDateTime)
        now = now.replace(tzinfo=None)
    for row in bind.execute(sa.select(rules).where(rules.c.event == OLD)).mappings().all():
        direction = _direction(row["conditions"])
        name = SENT if direction == "outbound" else RECEIVED
        bind.execute(
            sa.update(rules).where(rules.c.id == row["id"]).values(event=name, updated_at=now)
        )
        if direction is None:
            copy = {**row, "id": uuid.uuid4(), "event": SENT, "created_at": now, "updated_at": now}
            copy["name"] = f"{row['name'][:93]} (sent)"
            bind.execute(sa.insert(rules).values(**copy))
    direction = (
        sa.select(messages.c.direction)
        .where(messages.c.id == events.c.message_id)
        .scalar_subquery()
    )
    bind.execute(
        sa.update(events)
        .where(events.c.event == OLD)
        .values(event=sa.case((direction == "outbound", SENT), else_=RECEIVED))
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("SET LOCAL app.bypass_rls = 'on'")
    for table in (rules, events):
        bind.execute(sa.update(table).where(table.c.event.in_((RECEIVED, SENT))).values(event=OLD))
