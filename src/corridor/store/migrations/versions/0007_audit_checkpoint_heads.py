"""audit checkpoints anchor the set of writers: the signed heads of every chain (issue 13 E2)

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch_op:
        batch_op.add_column(sa.Column("heads", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch_op:
        batch_op.drop_column("heads")
