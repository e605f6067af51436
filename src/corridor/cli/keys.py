"""``corridor keys``: the AS's signing keys (``keys list``, ``keys rotate``)."""

from __future__ import annotations

from pathlib import Path

import click

from corridor.cli.common import CONFIG, DATA_DIR, DATABASE, JSON, echo_json, iso_time, load_server_keys


@click.group()
def keys() -> None:
    """The AS's signing keys (shared by every instance through the database)."""


@keys.command("list")
@DATA_DIR
@CONFIG
@DATABASE
@JSON
def keys_list(
    data_dir: Path | None, config_file: Path | None, database_url: str | None, as_json: bool
) -> None:
    """Each key with its state: pending, active, retiring or retired."""
    _, server_keys = load_server_keys(data_dir, config_file, database_url)
    states = server_keys.states()
    if as_json:
        echo_json([vars(state) for state in states])
        return
    if not states:
        click.echo("no keys yet (corridor serve makes the first one)")
        return
    width = max([3, *(len(state.kid) for state in states)])
    click.echo(f"{'kid':<{width}} {'alg':<6} {'state':<9} {'activates':<21} retires")
    for state in states:
        click.echo(
            f"{state.kid:<{width}} {state.alg:<6} {state.state:<9} "
            f"{iso_time(state.activates_at):<21} {iso_time(state.retires_at)}"
        )


@keys.command("rotate")
@DATA_DIR
@CONFIG
@DATABASE
@click.option(
    "--activate-in",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds until the new key signs (default: the key_activation_delay setting, 600).",
)
@click.option("--alg", type=click.Choice(["ES256", "PS256", "EdDSA"]), default=None)
def keys_rotate(
    data_dir: Path | None,
    config_file: Path | None,
    database_url: str | None,
    activate_in: float | None,
    alg: str | None,
) -> None:
    """Add a signing key: published by every instance now, signing after the delay."""
    settings, server_keys = load_server_keys(data_dir, config_file, database_url)
    delay = settings.key_activation_delay if activate_in is None else activate_in
    state = server_keys.rotate(delay, alg)
    click.echo(f"added {state.kid} ({state.alg}): published now, signs from {iso_time(state.activates_at)}")
