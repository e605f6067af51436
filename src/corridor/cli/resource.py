"""``corridor resource``: register resource servers (``resource add``, ``list``, ``show``,
``remove``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from corridor.cli.common import CONFIG, DATA_DIR, JSON, echo_json, iso_time, load_settings, migrated_store


@click.group()
def resource() -> None:
    """Register resource servers (RFC 8707 resource identifiers and token audiences)."""


@resource.command("add")
@DATA_DIR
@CONFIG
@click.argument("identifier")
@click.option("--name", required=True)
@click.option("--scope", default="", help="Space-separated scopes this resource server serves.")
@click.option("--introspection-client", default=None, help="client_id the RS uses to call introspection.")
def resource_add(
    data_dir: Path | None,
    config_file: Path | None,
    identifier: str,
    name: str,
    scope: str,
    introspection_client: str | None,
) -> None:
    """Register a resource server by its exact identifier (an https URL)."""
    if not identifier.startswith("https://") or "#" in identifier:
        raise click.ClickException("the identifier must be an https URL without fragment (RFC 8707 2)")
    store = migrated_store(load_settings(data_dir, config_file))
    if identifier in {r["identifier"] for r in store.clients.resource_servers()}:
        raise click.ClickException(f"resource server {identifier!r} already exists")
    store.clients.add_resource_server(identifier, name, scope.split(), introspection_client, time.time())
    click.echo(identifier)


def _resource_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "identifier": row["identifier"],
        "name": row["name"],
        "scopes": json.loads(row["scopes"]),
        "introspection_client_id": row["introspection_client_id"],
        "created_at": iso_time(row["created_at"]),
    }


@resource.command("list")
@DATA_DIR
@CONFIG
@JSON
def resource_list(data_dir: Path | None, config_file: Path | None, as_json: bool) -> None:
    """List resource servers."""
    rows = [
        _resource_json(r)
        for r in migrated_store(load_settings(data_dir, config_file)).clients.resource_servers()
    ]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no resource servers")
    for row in rows:
        click.echo(f"{row['identifier']}\t{row['name']}\t{' '.join(row['scopes'])}")


@resource.command("show")
@DATA_DIR
@CONFIG
@click.argument("identifier")
@JSON
def resource_show(data_dir: Path | None, config_file: Path | None, identifier: str, as_json: bool) -> None:
    """Show one resource server: its name, scopes and the client it introspects as."""
    store = migrated_store(load_settings(data_dir, config_file))
    row = next((r for r in store.clients.resource_servers() if r["identifier"] == identifier), None)
    if row is None:
        raise click.ClickException(f"no resource server {identifier!r}")
    shown = _resource_json(row)
    if as_json:
        echo_json(shown)
        return
    for name, value in shown.items():
        click.echo(f"{name}: {' '.join(value) if isinstance(value, list) else value or '-'}")


@resource.command("remove")
@DATA_DIR
@CONFIG
@click.argument("identifier")
def resource_remove(data_dir: Path | None, config_file: Path | None, identifier: str) -> None:
    """Remove a resource server."""
    if not migrated_store(load_settings(data_dir, config_file)).clients.remove_resource_server(identifier):
        raise click.ClickException(f"no resource server {identifier!r}")
    click.echo(f"removed {identifier}")
