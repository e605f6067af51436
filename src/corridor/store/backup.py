"""Backing up and restoring the SQLite store (``corridor db backup`` / ``db restore``).

A backup is SQLite's online backup API (``sqlite3.Connection.backup``): a consistent copy of
the whole database, taken while the server runs and writes, including what is still in the WAL.
The copy is written 0600 from its first byte, like the live file (design.md 5c): it holds the
AS's signing keys, the server secrets and the users' TOTP secrets. PostgreSQL is backed up
with its own tools (``pg_dump``), not here.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

from alembic.script import ScriptDirectory

from corridor.core.private_files import PRIVATE_FILE
from corridor.store.engine import parse_url
from corridor.store.migrate import MIGRATIONS

#: The tables every Corridor database has (migration 0001): what makes a file one.
_CORRIDOR_TABLES = frozenset({"alembic_version", "clients", "signing_keys", "grants", "users"})


class BackupError(ValueError):
    """The file is not a Corridor SQLite database this version can restore (one line)."""


def known_revisions() -> set[str]:
    """Every migration revision shipped with this version of Corridor."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def _new_private_file(path: Path) -> None:
    """An empty file, 0600 from its creation; refuses one that exists (O_EXCL)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))


def copy_database(source: Path, target: Path) -> None:
    """Copy the SQLite database ``source`` into the new file ``target`` (0600) with the online
    backup API: consistent even while another process writes ``source``. ``target`` must not
    exist; a failed copy leaves no file behind."""
    _new_private_file(target)
    try:
        with (
            closing(sqlite3.connect(source)) as src,
            closing(sqlite3.connect(target)) as dst,
        ):
            src.execute("PRAGMA busy_timeout=10000")
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def backup_revision(path: Path) -> str:
    """The migration revision of the Corridor SQLite database at ``path``, checked: a SQLite
    file whose pages are intact, with Corridor's tables, at a revision this version ships."""
    try:
        with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
            if conn.execute("PRAGMA quick_check").fetchone() != ("ok",):
                raise BackupError(f"{path}: the SQLite file is damaged (PRAGMA quick_check failed)")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = _CORRIDOR_TABLES - tables
            if missing:
                raise BackupError(f"{path}: not a Corridor database (no {', '.join(sorted(missing))} table)")
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path}: not a SQLite database ({exc})") from exc
    if revision is None or revision[0] not in known_revisions():
        found = revision[0] if revision else "none"
        raise BackupError(
            f"{path}: migration revision {found} is not one this version of Corridor knows "
            "(a backup of a newer Corridor? restore it with that version)"
        )
    return str(revision[0])


def restore_database(backup: Path, target: Path) -> None:
    """Put the checked ``backup`` in place as the database ``target`` (0600): copied beside it,
    then renamed over it, with the old file's -wal and -shm removed, so a half-done restore never
    leaves a mixed database. The server must not be running on ``target``."""
    partial = target.with_name(target.name + ".restoring")
    partial.unlink(missing_ok=True)
    copy_database(backup, partial)
    for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        leftover.unlink(missing_ok=True)
    os.replace(partial, target)


def libpq_url(url: str) -> str:
    """A PostgreSQL database URL as pg_dump and pg_restore take it: no driver name, and no
    password (they read it from PGPASSWORD or ~/.pgpass, never from a command line)."""
    parsed = parse_url(url)
    user = f"{quote(parsed.username, safe='')}@" if parsed.username else ""
    host = parsed.host or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parsed.port}" if parsed.port else ""
    query = "&".join(f"{quote(k)}={quote(str(v))}" for k, v in sorted(parsed.query.items()))
    return f"postgresql://{user}{host}{port}/{quote(parsed.database or '')}" + (f"?{query}" if query else "")


def pg_commands(url: str, file: Path) -> tuple[str, str]:
    """The PostgreSQL way to back up and restore (Corridor does not reimplement pg_dump): the
    exact ``pg_dump`` and ``pg_restore`` command lines for this database and ``file``."""
    target, name = shlex.quote(libpq_url(url)), shlex.quote(str(file))
    return (
        f"pg_dump --format=custom --file={name} {target}",
        f"pg_restore --clean --if-exists --no-owner --dbname={target} {name}",
    )
