"""segments: saved audiences (a filter over contacts), and the contacts index they walk

Revision ID: a6d41c9e2b57
Revises: c5d1e9a3f7b2
Create Date: 2026-12-03 15:45:00.000000

`contacts (workspace_id, id)` serves the keyset walk of an audience in batches
(`segment.service.iter_contact_ids`) and its counts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from botplatform.migrations import rls

# Row-level security for the new tenant table (migrations/rls.py).
RLS_TABLES = ("segments",)

revision: str = "a6d41c9e2b57"
down_revision: str | Sequence[str] | None = "c5d1e9a3f7b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segments_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_segments_workspace_id_name")),
    )
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_segments_workspace_id"), ["workspace_id"], unique=False
        )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index("ix_contacts_workspace_id_id", ["workspace_id", "id"], unique=False)
    rls.protect(RLS_TABLES)


def downgrade() -> None:
    rls.unprotect(RLS_TABLES)
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_workspace_id_id")
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_segments_workspace_id"))
    op.drop_table("segments")
