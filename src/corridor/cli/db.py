"""``corridor db``: the database schema (``db upgrade``) and backups (``db backup``,
``db restore``: SQLite's online backup API; PostgreSQL with pg_dump / pg_restore)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from corridor.cli.common import (
    CONFIG,
    DATA_DIR,
    DATABASE,
    JSON,
    database_unavailable,
    echo_json,
    load_settings,
    migrated_store,
    require_database,
)


@click.group()
def db() -> None:
    """The database: its schema (Alembic migrations shipped with Corridor) and backups."""


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


def _sqlite_file(settings: Any, file: Path, done: str) -> Path:
    """The SQLite file of these settings; on PostgreSQL one line with the commands to run."""
    from corridor.store.engine import parse_url

    url = parse_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        raise click.ClickException(
            f"PostgreSQL is {done} with its own tools; run: {_pg_commands(settings, file)}"
        )
    return Path(url.database or "")


def _pg_commands(settings: Any, file: Path) -> str:
    """The PostgreSQL way, as one line: the exact commands (the password from PGPASSWORD or ~/.pgpass)."""
    from corridor.store.backup import pg_commands

    dump, restore = pg_commands(settings.database_url, file)
    return f"{dump}; to restore: {restore}, then corridor db upgrade"


def _also_copy(settings: Any, config_file: Path | None) -> list[str]:
    """What the database does not hold: the configuration and the TLS material (the signing
    keys, server secrets, clients, users and grants are all in the database)."""
    found = [str(config_file)] if config_file else []
    found += [f for f in (settings.tls_cert_file, settings.tls_key_file, settings.mtls_ca_file) if f]
    for extra in ("tls", "demo-client-key.json", "demo-user-password.txt"):
        if (settings.data_dir / extra).exists():
            found.append(str(settings.data_dir / extra))
    return found


@db.command("backup")
@DATA_DIR
@CONFIG
@DATABASE
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@JSON
def db_backup(
    data_dir: Path | None,
    config_file: Path | None,
    database_url: str | None,
    file: Path,
    force: bool,
    as_json: bool,
) -> None:
    """Copy the SQLite database to FILE (0600) with SQLite's online backup API: consistent
    while the server runs. PostgreSQL: prints the pg_dump command to run instead (exit 1)."""
    import sqlite3

    from corridor.store.backup import backup_revision, copy_database

    settings = load_settings(data_dir, config_file, database_url=database_url)
    source = _sqlite_file(settings, file, "backed up")
    require_database(settings)
    if file.exists() or file.is_symlink():
        if not force:
            raise click.ClickException(f"{file} exists; give --force to overwrite it")
        file.unlink()
    try:
        copy_database(source, file)
    except (OSError, sqlite3.Error) as exc:
        raise click.ClickException(f"cannot write {file}: {exc}") from exc
    revision = backup_revision(file)
    also = _also_copy(settings, config_file)
    if as_json:
        echo_json({"file": str(file), "database": str(source), "revision": revision, "also_copy": also})
        return
    click.echo(f"backed up {source} to {file} (revision {revision}, mode 600)")
    if also:
        click.echo("not in the database, copy these too: " + " ".join(also))


@db.command("restore")
@DATA_DIR
@CONFIG
@DATABASE
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="Replace the database already in the data directory.")
@JSON
def db_restore(
    data_dir: Path | None,
    config_file: Path | None,
    database_url: str | None,
    file: Path,
    force: bool,
    as_json: bool,
) -> None:
    """Restore a backup FILE (of `db backup`) into the data directory and migrate it forward.
    Stop the server first. PostgreSQL: prints the pg_restore command to run instead (exit 1)."""
    import sqlite3

    from corridor.core.private_files import private_directory
    from corridor.store.backup import BackupError, backup_revision, restore_database
    from corridor.store.migrate import current_revision

    settings = load_settings(data_dir, config_file, database_url=database_url)
    target = _sqlite_file(settings, file, "restored")
    try:
        revision = backup_revision(file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    if target.exists() and not force:
        raise click.ClickException(
            f"a database already exists at {target}; stop the server and give --force to replace it"
        )
    private_directory(target.parent)
    try:
        restore_database(file, target)
    except (OSError, sqlite3.Error) as exc:
        raise click.ClickException(f"cannot restore into {target}: {exc}") from exc
    store = migrated_store(settings)
    now = current_revision(store.engine)
    store.close()
    if as_json:
        echo_json({"file": str(file), "database": str(target), "from_revision": revision, "revision": now})
        return
    click.echo(f"restored {file} into {target} (revision {revision}, now {now})")
