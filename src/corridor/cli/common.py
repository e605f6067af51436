"""What the ``corridor`` commands share: their options, loading the settings, opening the store
(one-line errors, exit status 1, when there is no database or it does not answer), ``--json``
output and times."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

if TYPE_CHECKING:
    from corridor.store.sql import Store

DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default ./.corridor).",
)
CONFIG = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="TOML configuration file.",
)
DATABASE = click.option(
    "--database", "database_url", default=None, help="Database URL (default: the settings')."
)
JSON = click.option("--json", "as_json", is_flag=True)


def load_settings(data_dir: Path | None, config_file: Path | None, **overrides: Any) -> Any:
    """The settings (design.md 5c); a bad configuration is one line naming the setting or file."""
    import tomllib

    from corridor.server.settings import Settings

    try:
        return Settings.load(config_file, data_dir=data_dir, **overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.ClickException(
            f"configuration: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from exc
    except tomllib.TOMLDecodeError as exc:  # issue 13 F1
        raise click.ClickException(f"{config_file}: not valid TOML: {exc}; fix the file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{config_file}: cannot read it: {exc}") from exc


def database_unavailable(settings: Any, exc: Exception) -> click.ClickException:
    """issue 13 F1: the database does not answer: one line naming it (without its password)."""
    from corridor.store.engine import parse_url as make_url

    url = make_url(settings.database_url).render_as_string(hide_password=True)
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return click.ClickException(
        f"database {url} unavailable: {reason}; is it running? (check database_url / --database)"
    )


def require_database(settings: Any) -> None:
    """issue 13 F2: only `serve` and `db upgrade` create an installation; every other command
    refuses a data directory (or database URL) that holds no Corridor database."""
    from corridor.store.engine import parse_url as make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and not Path(url.database).is_file():
            raise click.ClickException(
                f"no Corridor database at {url.database}: give the right --data-dir (or --database), "
                "or create one with corridor db upgrade"
            )
        return
    from corridor.server.settings import open_store
    from corridor.store.engine import DatabaseError as DBAPIError
    from corridor.store.migrate import current_revision

    store = open_store(settings)
    try:
        with store.engine.connect():  # current_revision reads a failed connection as "no schema"
            pass
        revision = current_revision(store.engine)
    except DBAPIError as exc:
        raise database_unavailable(settings, exc) from exc
    finally:
        store.close()
    if revision is None:
        raise click.ClickException(
            f"no Corridor database at {url.render_as_string(hide_password=True)}: "
            "give the right --database, or create one with corridor db upgrade"
        )


def migrated_store(settings: Any, *, create: bool = False) -> Store:
    """The store of these settings, migrated; ``create``: make the data directory and database
    if missing (serve, db upgrade), 0700 and 0600 (design.md 5c)."""
    from corridor.core.private_files import private_directory
    from corridor.server.settings import open_store
    from corridor.store.engine import DatabaseError as DBAPIError

    if create:
        private_directory(settings.data_dir)
    else:
        require_database(settings)
    store = open_store(settings)
    try:
        store.migrate()
    except DBAPIError as exc:
        store.close()
        raise database_unavailable(settings, exc) from exc
    return store


def load_server_keys(data_dir: Path | None, config_file: Path | None, database_url: str | None) -> Any:
    """The settings and the AS's signing keys as stored (keys, audit checkpoint)."""
    from corridor.core.clock import SystemClock
    from corridor.server.keys import ServerKeys

    settings = load_settings(data_dir, config_file, database_url=database_url)
    server_keys = ServerKeys(
        migrated_store(settings),
        SystemClock(),
        settings.signing_alg,
        keep=settings.access_token_lifetime + settings.max_clock_skew,
    )
    server_keys.reload()
    return settings, server_keys


def iso_time(timestamp: float | None) -> str:
    """A stored time as UTC ISO 8601 to the second; ``-`` for none."""
    return "-" if timestamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def echo_json(value: Any) -> None:
    """``--json`` output: the value as indented JSON."""
    click.echo(json.dumps(value, indent=2))
