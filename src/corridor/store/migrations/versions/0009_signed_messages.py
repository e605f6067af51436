"""signed messages: the request objects and JARM responses kept as evidence (issue 17)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signed_messages",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_index("ix_signed_messages_created_at", "signed_messages", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_signed_messages_created_at", table_name="signed_messages")
    op.drop_table("signed_messages")
