"""stored avatars: `contact_identities.profile_picture_key`

Revision ID: 1c973aa0aefd
Revises: 040151d8e138
Create Date: 2026-12-04 15:30:00.000000

Telegram serves a profile photo only through a URL that carries the bot token: the platform
downloads it once into its own media storage and keeps the media key, never that URL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1c973aa0aefd"
down_revision: str | Sequence[str] | None = "040151d8e138"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact_identities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("profile_picture_key", sa.String(1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact_identities", schema=None) as batch_op:
        batch_op.drop_column("profile_picture_key")
