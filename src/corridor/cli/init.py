"""``corridor init DIR``: a production configuration skeleton and a private data directory
(issue 18)."""

from __future__ import annotations

from pathlib import Path

import click

from corridor.cli.common import JSON, echo_json


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory to create (0700) and name in the file (default DIRECTORY/data).",
)
@click.option("--force", is_flag=True, help="Replace an existing DIRECTORY/corridor.toml.")
@JSON
def init(directory: Path, data_dir: Path | None, force: bool, as_json: bool) -> None:
    """Write DIRECTORY/corridor.toml (every setting, its default and what it does) and create
    the data directory, for `corridor serve --config DIRECTORY/corridor.toml`."""
    from corridor.core.private_files import private_directory, write_private
    from corridor.server.skeleton import render_skeleton

    config = directory / "corridor.toml"
    data = (data_dir or directory / "data").absolute()
    if config.exists() and not force:
        raise click.ClickException(f"{config} exists: corridor init does not replace it (--force does)")
    try:
        if not directory.exists():
            private_directory(directory)
        private_directory(data)
        write_private(config, render_skeleton(data).encode())
    except OSError as exc:
        raise click.ClickException(f"cannot write {exc.filename or config}: {exc.strerror or exc}") from exc
    if as_json:
        echo_json({"config_file": str(config.absolute()), "data_dir": str(data)})
        return
    click.echo(
        "\n".join(
            [
                f"wrote {config} (every setting, its default and what it does; mode 0600)",
                f"created {data} (mode 0700)",
                "next:",
                f"  1. set issuer and tls_cert_file / tls_key_file in {config}",
                "     (or, behind nginx on this host, trusted_proxies: deploy/nginx/README.md)",
                f"  2. corridor db upgrade --config {config}",
                f"  3. corridor user add NAME --password-stdin --config {config}",
                f"     corridor client add --name NAME --redirect-uri URI --jwks-file FILE --config {config}",
                f"  4. corridor serve --config {config}   (deploy/systemd/corridor.service)",
                "  the production checklist: deploy/PRODUCTION.md",
            ]
        )
    )
