"""``corridor db``: the database schema (``db upgrade``)."""

from __future__ import annotations

from pathlib import Path

import click

from corridor.cli.common import (
    CONFIG,
    DATA_DIR,
    DATABASE,
    database_unavailable,
    load_settings,
    migrated_store,
)


@click.group()
def db() -> None:
    """The database schema (Alembic migrations shipped with Corridor)."""


@db.command("upgrade")
@DATA_DIR
@CONFIG
@DATABASE
def db_upgrade(data_dir: Path | None, config_file: Path | None, database_url: str | None) -> None:
    """Apply every pending migration (instances also do this at start, under a lock)."""
    from corridor.store.engine import DatabaseError as DBAPIError
    from corridor.store.migrate import current_revision

    settings = load_settings(data_dir, config_file, database_url=database_url)
    try:
        store = migrated_store(settings, create=True)
    except DBAPIError as exc:
        raise database_unavailable(settings, exc) from exc
    click.echo(f"database at revision {current_revision(store.engine)}")
    store.close()
