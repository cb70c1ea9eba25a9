"""recipients of broadcasts per month: `plans.recipients_per_month` (seeded) and
`usage_counters.broadcast_recipients`

Revision ID: 076fc722ea02
Revises: 4d2a9c7e1b53
Create Date: 2026-12-03 19:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "076fc722ea02"
down_revision: str | Sequence[str] | None = "4d2a9c7e1b53"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The values as of this revision (botplatform/plans/defaults.py; a test keeps them equal).
SEED = {"starter": 5_000, "pro": 100_000, "enterprise": 1_000_000}


def upgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipients_per_month", sa.Integer(), nullable=True))
    with op.batch_alter_table("usage_counters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("broadcast_recipients", sa.BigInteger(), server_default="0", nullable=False)
        )
    plans = sa.table("plans", sa.column("name", sa.String), sa.column("recipients_per_month"))
    for name, limit in SEED.items():
        op.execute(plans.update().where(plans.c.name == name).values(recipients_per_month=limit))


def downgrade() -> None:
    with op.batch_alter_table("usage_counters", schema=None) as batch_op:
        batch_op.drop_column("broadcast_recipients")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("recipients_per_month")
