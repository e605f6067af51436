"""The ``corridor`` command: the front door (design.md 6). One module per command group: init,
serve (``serve``, ``demo-api``), db, keys, audit, client, user, resource, grant (and token),
login (and call); what they share is in common. ``corridor check`` lives with the checker
(design.md 1: check imports client and core only)."""

from __future__ import annotations

import click

from corridor.check.command import check
from corridor.cli import audit, client, db, grant, init, keys, login, resource, serve, user


@click.group()
@click.version_option(package_name="corridor")
def main() -> None:
    """Corridor: a FAPI 2.0 authorization server, client and resource server."""


for command in (
    init.init,
    serve.serve,
    db.db,
    keys.keys,
    audit.audit,
    serve.demo_api,
    client.client,
    user.user,
    resource.resource,
    grant.grant,
    grant.token,
    login.login,
    login.call,
    check,
):
    main.add_command(command)
