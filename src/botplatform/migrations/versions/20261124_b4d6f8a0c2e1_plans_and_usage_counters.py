"""plans (seeded) and per-workspace monthly usage counters

Revision ID: b4d6f8a0c2e1
Revises: b7d2e4f61a30
Create Date: 2026-11-24 23:00:00.000000

"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from botplatform.migrations import rls

# `plans` is a system table (every workspace reads the same rows): no row-level security.
RLS_TABLES = ("usage_counters",)

revision: str = "b4d6f8a0c2e1"
down_revision: str | Sequence[str] | None = "b7d2e4f61a30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The values as of this revision (botplatform/plans/defaults.py; a test keeps them equal).
# Columns: position, messages/month, channels, members, bots, broadcasts/month,
# recipients/broadcast, AI tokens/month, API requests/minute, retention days (None: none).
SEED = {
    "starter": (0, 10_000, 3, 10, 5, 20, 1_000, 200_000, 600, 90),
    "pro": (1, 100_000, 10, 50, 25, 200, 25_000, 2_000_000, 3_000, 365),
    "enterprise": (2, 1_000_000, 100, 500, 200, 2_000, 250_000, 20_000_000, 20_000, None),
}
QUOTAS = (
    "position",
    "messages_per_month",
    "channels",
    "members",
    "bots",
    "broadcasts_per_month",
    "recipients_per_broadcast",
    "ai_tokens_per_month",
    "api_requests_per_minute",
    "retention_days",
)


def _create_plans() -> sa.Table:
    columns = [sa.Column("name", sa.String(length=20), nullable=False)]
    columns.append(sa.Column("position", sa.Integer(), nullable=False))
    columns += [sa.Column(name, sa.Integer(), nullable=True) for name in QUOTAS[1:]]
    columns += [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]
    return op.create_table(
        "plans", *columns, sa.PrimaryKeyConstraint("name", name=op.f("pk_plans"))
    )


def _seed(plans: sa.Table) -> None:
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored as naive UTC there (models/base.py)
    rows = [
        {
            "name": name,
            **dict(zip(QUOTAS, values, strict=True)),
            "created_at": now,
            "updated_at": now,
        }
        for name, values in SEED.items()
    ]
    op.bulk_insert(plans, rows)


def upgrade() -> None:
    _seed(_create_plans())
    op.create_table(
        "usage_counters",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("messages_inbound", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("messages_outbound", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("ai_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("broadcasts", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_usage_counters_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_counters")),
        sa.UniqueConstraint(
            "workspace_id", "period", name=op.f("uq_usage_counters_workspace_id_period")
        ),
    )
    with op.batch_alter_table("usage_counters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_usage_counters_workspace_id"), ["workspace_id"], unique=False
        )
    rls.protect(RLS_TABLES)


def downgrade() -> None:
    rls.unprotect(RLS_TABLES)
    with op.batch_alter_table("usage_counters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_counters_workspace_id"))
    op.drop_table("usage_counters")
    op.drop_table("plans")
