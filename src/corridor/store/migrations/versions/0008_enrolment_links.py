"""enrolment links: an operator binds a user's first strong factor (issue 13 C4)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrolment_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("consumed_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_enrolment_links_expires_at", "enrolment_links", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_enrolment_links_expires_at", table_name="enrolment_links")
    op.drop_table("enrolment_links")
