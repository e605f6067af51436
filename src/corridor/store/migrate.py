"""Alembic, driven from code: the migrations ship inside the package."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"

#: The newest migration's revision (migrations/versions), so that a database already there is
#: recognised without Alembic: importing it and reading the scripts cost a third of a second in
#: every CLI command (issue 19). tests/store/test_migrate_head.py checks it against Alembic's head.
HEAD_REVISION = "0011"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision``; nothing to do (and Alembic not loaded) when the database is at
    the head already."""
    if revision == "head" and current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None before the first migration)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None
