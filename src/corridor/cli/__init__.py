"""The ``corridor`` command: the front door (design.md 6). One module per command group: init,
serve (``serve``, ``demo-api``), db, keys, audit, client, user, resource, grant (and token),
login (and call); what they share is in common. ``corridor check`` lives with the checker
(design.md 1: check imports client and core only)."""

from __future__ import annotations

import click

from corridor.cli import audit, client, db, grant, init, keys, login, resource, serve, user


class _Corridor(click.Group):
    """The command group, with ``check`` imported only when it is asked for: the checker and its
    modules are about a sixth of the start-up of every other command (issue 19)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "check"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "check":
            from corridor.check.command import check

            return check
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Corridor)
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
):
    main.add_command(command)
