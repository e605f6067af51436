"""audit checkpoints anchor the set of writers (issue 13 E2); user names in their RFC 8265 form
(issue 13 C6)

Revision ID: 0007
Revises: 0006

User names are stored in the PRECIS UsernameCaseMapped form from now on (server/usernames.py), and
sign-in looks up the enforced form of what was typed. Older names are converted here; a name that
the profile refuses (a space, an invisible joiner) or whose enforced form another user already
has is left as it is and printed: that account cannot sign in until the operator removes it and
adds it again under a valid name (a silent merge or rename would hand one person's account to
another).
"""

import sqlalchemy as sa
from alembic import op
from precis_i18n import get_profile

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch_op:
        batch_op.add_column(sa.Column("heads", sa.Text(), nullable=True))
    users = sa.table("users", sa.column("id", sa.String), sa.column("username", sa.String))
    bind = op.get_bind()
    rows = bind.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)).all()
    taken = {name for _, name in rows}
    profile = get_profile("UsernameCaseMapped")
    for user_id, name in rows:
        try:
            enforced = profile.enforce(name)
        except UnicodeError:
            print(f"corridor: user name {name!r} is not valid under RFC 8265; left as is (cannot sign in)")
            continue
        if enforced == name:
            continue
        if enforced in taken:
            print(f"corridor: user name {name!r} is {enforced!r} after RFC 8265, which exists; left as is")
            continue
        bind.execute(sa.update(users).where(users.c.id == user_id).values(username=enforced))
        taken.discard(name)
        taken.add(enforced)


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch_op:
        batch_op.drop_column("heads")
