"""grants: user_id, auth_time and acr may be NULL, for the client credentials grant (issue 20)

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grants") as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.String(64), nullable=True)
        batch_op.alter_column("auth_time", existing_type=sa.Float(), nullable=True)
        batch_op.alter_column("acr", existing_type=sa.String(32), nullable=True)


def downgrade() -> None:
    # The old schema cannot hold a grant without a user: its tokens and it go.
    op.execute("DELETE FROM access_tokens WHERE grant_id IN (SELECT id FROM grants WHERE user_id IS NULL)")
    op.execute("DELETE FROM grants WHERE user_id IS NULL")
    with op.batch_alter_table("grants") as batch_op:
        batch_op.alter_column("acr", existing_type=sa.String(32), nullable=False)
        batch_op.alter_column("auth_time", existing_type=sa.Float(), nullable=False)
        batch_op.alter_column("user_id", existing_type=sa.String(64), nullable=False)
