"""a conversation per thread: `conversations.thread_key` ("" for a contact's one
conversation on a channel), part of the conversation's unique key

Revision ID: 040151d8e138
Revises: 076fc722ea02
Create Date: 2026-12-04 15:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "040151d8e138"
down_revision: str | Sequence[str] | None = "076fc722ea02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On SQLite this rebuilds the table (a unique key cannot be dropped in place); the
    # migration environment turns foreign keys off meanwhile, so dropping the old table does
    # not cascade into the messages that refer to it.
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("thread_key", sa.String(length=200), server_default="", nullable=False)
        )
        batch_op.drop_constraint("uq_conversations_channel_id_contact_id", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_conversations_channel_id_contact_id_thread_key"),
            ["channel_id", "contact_id", "thread_key"],
        )


def downgrade() -> None:
    # A contact's thread conversations cannot share the one (channel, contact) key, and
    # deleting them here would not cascade on SQLite (foreign keys are off while migrating):
    # refused until they are gone, rather than losing or orphaning messages silently.
    threads = op.get_bind().execute(
        sa.text("SELECT count(*) FROM conversations WHERE thread_key <> ''")
    )
    if threads.scalar_one():
        raise RuntimeError(
            "conversations of Slack threads exist: delete them (DELETE FROM conversations "
            "WHERE thread_key <> '') before downgrading past this revision"
        )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_conversations_channel_id_contact_id_thread_key"), type_="unique"
        )
        batch_op.create_unique_constraint(
            "uq_conversations_channel_id_contact_id", ["channel_id", "contact_id"]
        )
        batch_op.drop_column("thread_key")
