"""workspace branding, custom domain and retention policy

Revision ID: b7d2e4f61a30
Revises: a3c5e7f90b12
Create Date: 2026-11-24 22:50:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7d2e4f61a30"
down_revision: str | Sequence[str] | None = "a3c5e7f90b12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# No new table: these are columns of the tenant itself (like require_2fa and the business
# hours), and `workspaces` has no row-level security — the login page must find a workspace
# by its host name before anyone has entered a workspace.


def upgrade() -> None:
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("brand_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("brand_primary_color", sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column("brand_background_color", sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column("brand_text_color", sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column("logo_key", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("logo_mime", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("custom_domain", sa.String(length=253), nullable=True))
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "archive_before_delete", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_workspaces_custom_domain"), ["custom_domain"]
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_workspace_id_created_at", ["workspace_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_workspace_id_created_at")
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_workspaces_custom_domain"), type_="unique")
        batch_op.drop_column("archive_before_delete")
        batch_op.drop_column("retention_days")
        batch_op.drop_column("custom_domain")
        batch_op.drop_column("logo_mime")
        batch_op.drop_column("logo_key")
        batch_op.drop_column("brand_text_color")
        batch_op.drop_column("brand_background_color")
        batch_op.drop_column("brand_primary_color")
        batch_op.drop_column("brand_name")
