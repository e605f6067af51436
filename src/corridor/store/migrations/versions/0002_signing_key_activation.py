"""signing-key activation time (key rotation) and expiry indexes (batched purge), issue 7

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EXPIRING = (
    "replay_cache",
    "pushed_requests",
    "interactions",
    "browser_sessions",
    "authorization_codes",
    "access_tokens",
    "grants",
)


def upgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch_op:
        batch_op.add_column(sa.Column("activates_at", sa.Float(), nullable=True))
    op.execute("UPDATE signing_keys SET activates_at = created_at WHERE activates_at IS NULL")
    # The purge job finds expired rows by index, in small batches (store/sql.py purge_expired).
    for table in EXPIRING:
        op.create_index(f"ix_{table}_expires_at", table, ["expires_at"])


def downgrade() -> None:
    for table in EXPIRING:
        op.drop_index(f"ix_{table}_expires_at", table_name=table)
    with op.batch_alter_table("signing_keys") as batch_op:
        batch_op.drop_column("activates_at")
