"""store/migrate.py's HEAD_REVISION is Alembic's head, and a database at it is left alone while
one behind it is migrated (issue 19: the head is recognised without loading Alembic)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from corridor.store.migrate import HEAD_REVISION, alembic_config, current_revision, upgrade
from corridor.store.sql import Store


def test_head_revision_is_alembics_head(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        heads = ScriptDirectory.from_config(alembic_config(store.engine)).get_heads()
    finally:
        store.close()
    assert heads == [HEAD_REVISION]


def test_upgrade_migrates_a_database_behind_the_head_and_stops_at_it(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert current_revision(store.engine) is None
        upgrade(store.engine)
        assert current_revision(store.engine) == HEAD_REVISION
        command.downgrade(alembic_config(store.engine), "-1")
        assert current_revision(store.engine) != HEAD_REVISION
        upgrade(store.engine)
        assert current_revision(store.engine) == HEAD_REVISION
        upgrade(store.engine)  # at the head: nothing to do
        assert current_revision(store.engine) == HEAD_REVISION
    finally:
        store.close()
