"""The ``corridor`` command: the front door (design.md 6). One module per command group: serve
(``serve``, ``demo-api``), db, keys, audit, client, user, resource, login (and call); what they share is in
common. ``corridor check`` lives with the checker (design.md 1: check imports client and core only)."""

from __future__ import annotations

import click

from corridor.check.command import check
from corridor.cli import audit, client, db, keys, login, resource, serve, user


@click.group()
@click.version_option(package_name="corridor")
def main() -> None:
    """Corridor: a FAPI 2.0 authorization server, client and resource server."""


for command in (
    serve.serve,
    db.db,
    keys.keys,
    audit.audit,
    serve.demo_api,
    client.client,
    user.user,
    resource.resource,
    login.login,
    login.call,
    check,
):
    main.add_command(command)
