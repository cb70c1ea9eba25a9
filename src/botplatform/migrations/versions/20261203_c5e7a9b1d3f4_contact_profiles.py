"""contact profiles: `contact_identities.profile_picture_url` and `profile_fetched_at`

Revision ID: c5e7a9b1d3f4
Revises: a6d41c9e2b57
Create Date: 2026-12-03 16:40:00.000000

Messenger and Instagram send no name with a message: the contact's name and picture are read
from the Graph API on first contact, and again at most once a day (`profile_fetched_at`).
Existing identities start without them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5e7a9b1d3f4"
down_revision: str | Sequence[str] | None = "a6d41c9e2b57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact_identities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("profile_picture_url", sa.String(1000), nullable=True))
        batch_op.add_column(
            sa.Column("profile_fetched_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("contact_identities", schema=None) as batch_op:
        batch_op.drop_column("profile_fetched_at")
        batch_op.drop_column("profile_picture_url")
