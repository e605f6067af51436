"""``corridor grant``: list, show and revoke grants (``grant list``, ``show``, ``revoke``), and
``corridor token revoke JTI`` for one access token.

Revocation is a flag on the grant (design.md 5b) that covers its refresh token and every access
token issued under it (RFC 7009 2.1): introspection answers ``active: false`` and the refresh
grant ``invalid_grant`` at once, on every instance (they read the database, not a cache). Each
revocation is an evidence record in a chain of the CLI's own (writer ``cli:...``), written in
the same transaction, as ``audit import`` does."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from corridor.cli.common import (
    CONFIG,
    DATA_DIR,
    DATABASE,
    JSON,
    echo_json,
    iso_time,
    load_settings,
    migrated_store,
)

#: ``revoked_reason`` of an operator's revocation (the client's own is revoked_by_client).
OPERATOR = "revoked_by_operator"


@click.group()
def grant() -> None:
    """List, show and revoke grants (a user's consent to a client, and its tokens)."""


@click.group()
def token() -> None:
    """Access tokens: revoke one by its jti."""


def _user_id(store: Any, name: str) -> str:
    from corridor.server.usernames import UsernameError, enforce

    try:
        found = store.users.by_name(enforce(name))
    except UsernameError:
        found = None
    if found is None:
        raise click.ClickException(f"no user {name!r}")
    return str(found["id"])


def _state(row: dict[str, Any], now: float) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    return "expired" if row["expires_at"] <= now else "active"


def _grant_json(row: dict[str, Any], now: float) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user": row.get("username"),
        "sub": row["user_id"],
        "client_id": row["client_id"],
        "scope": row["scope"],
        "resource": json.loads(row["resources"]),
        "acr": row["acr"],
        "created_at": iso_time(row["created_at"]),
        "expires_at": iso_time(row["expires_at"]),
        "state": _state(row, now),
        "revoked_at": None if row["revoked_at"] is None else iso_time(row["revoked_at"]),
        "revoked_reason": row["revoked_reason"],
    }


@grant.command("list")
@DATA_DIR
@CONFIG
@DATABASE
@click.option("--user", "username", default=None, help="Only this user's grants.")
@click.option("--client", "client_id", default=None, help="Only this client's grants.")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="At most this many, newest first.",
)
@JSON
def grant_list(
    data_dir: Path | None,
    config_file: Path | None,
    database_url: str | None,
    username: str | None,
    client_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List grants, newest first: id, user, client, scope, resource, created, expires, state."""
    store = migrated_store(load_settings(data_dir, config_file, database_url=database_url))
    user_id = _user_id(store, username) if username is not None else None
    now = time.time()
    rows = [_grant_json(r, now) for r in store.grants.listed(user_id, client_id, limit)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no grants")
        return
    for row in rows:
        click.echo(
            "\t".join(
                [
                    row["id"],
                    row["user"] or row["sub"] or "(no user: client credentials)",
                    row["client_id"],
                    row["scope"],
                    " ".join(row["resource"]) or "-",
                    row["created_at"],
                    row["expires_at"],
                    row["state"],
                ]
            )
        )
    if len(rows) == limit:
        click.echo(f"(the newest {limit}; give --limit for more)", err=True)


@grant.command("show")
@DATA_DIR
@CONFIG
@DATABASE
@click.argument("grant_id")
@JSON
def grant_show(
    data_dir: Path | None, config_file: Path | None, database_url: str | None, grant_id: str, as_json: bool
) -> None:
    """One grant with its authorization_details and its outstanding access tokens."""
    store = migrated_store(load_settings(data_dir, config_file, database_url=database_url))
    row = store.grants.get(grant_id)
    if row is None:
        raise click.ClickException(f"no grant {grant_id!r}")
    now = time.time()
    user = store.users.get(row["user_id"])
    shown = _grant_json({**row, "username": user["username"] if user else None}, now)
    shown["authorization_details"] = (
        json.loads(row["authorization_details"]) if row["authorization_details"] else None
    )
    shown["refresh_token"] = row["refresh_token_hash"] is not None
    revoked = shown["state"] == "revoked"
    shown["access_tokens"] = [
        {
            "jti": t["jti"],
            "issued_at": iso_time(t["issued_at"]),
            "expires_at": iso_time(t["expires_at"]),
            "sender_constraint": t["cnf_method"],
            "key_thumbprint": t["cnf_thumbprint"],
        }
        for t in store.grants.access_tokens(grant_id)
        if t["revoked_at"] is None and t["expires_at"] > now and not revoked
    ]
    if as_json:
        echo_json(shown)
        return
    for name in ("id", "user", "client_id", "scope", "resource", "acr", "created_at", "expires_at", "state"):
        value = shown[name]
        click.echo(f"{name}: {' '.join(value) or '-' if isinstance(value, list) else value or '-'}")
    if revoked:
        click.echo(f"revoked: {shown['revoked_at']} ({shown['revoked_reason']})")
    click.echo(f"refresh token: {'yes' if shown['refresh_token'] else 'no'}")
    details = shown["authorization_details"]
    click.echo("authorization_details: " + (json.dumps(details) if details else "none"))
    tokens = shown["access_tokens"]
    click.echo(f"outstanding access tokens: {len(tokens) or 'none'}")
    for t in tokens:
        click.echo(f"  {t['jti']}\texpires {t['expires_at']}\t{t['sender_constraint']}")


def _record(store: Any, issuer: str, event: str, now: float, **about: Any) -> None:
    """An evidence record of an operator's revocation, in the CLI's own chain (audit import's way)."""
    from corridor.audit.chain import append
    from corridor.audit.events import Outcome
    from corridor.audit.log import AuditLog, Evidence, writer_id
    from corridor.core.randomness import new_id

    evidence = Evidence(
        issuer=issuer, request_id=new_id(), detail={"by": "operator", "via": "corridor cli"}, **about
    )
    append(store, writer_id("cli"), AuditLog.row(evidence, event, Outcome.REVOKED, now))


@grant.command("revoke")
@DATA_DIR
@CONFIG
@DATABASE
@click.argument("grant_id", required=False)
@click.option("--user", "username", default=None, help="Revoke every live grant of this user.")
@click.option("--client", "client_id", default=None, help="Revoke every live grant of this client.")
@JSON
def grant_revoke(
    data_dir: Path | None,
    config_file: Path | None,
    database_url: str | None,
    grant_id: str | None,
    username: str | None,
    client_id: str | None,
    as_json: bool,
) -> None:
    """Revoke a grant (ID), or all of a user's (--user) or a client's (--client): its refresh
    token and access tokens are refused at once (RFC 7009 2.1)."""
    from corridor.audit.events import Event

    if sum(v is not None for v in (grant_id, username, client_id)) != 1:
        raise click.ClickException("give exactly one of ID, --user NAME, --client ID")
    settings = load_settings(data_dir, config_file, database_url=database_url)
    store = migrated_store(settings)
    user_id = _user_id(store, username) if username is not None else None
    if grant_id is not None and store.grants.get(grant_id) is None:
        raise click.ClickException(f"no grant {grant_id!r}")
    if client_id is not None and store.clients.get(client_id) is None:
        raise click.ClickException(f"no client {client_id!r}")
    now = time.time()
    with store.unit_of_work() as uow:
        revoked = uow.grants.revoke_all(
            now, OPERATOR, grant_id=grant_id, user_id=user_id, client_id=client_id
        )
        for row in revoked:
            about = {"client_id": row["client_id"], "user_id": row["user_id"], "grant_id": row["id"]}
            _record(uow, settings.issuer, Event.REVOCATION_GRANT, now, **about)
    tokens = sum(r["access_tokens"] for r in revoked)
    if as_json:
        echo_json({"revoked": [r["id"] for r in revoked], "access_tokens": tokens})
        return
    if not revoked:
        click.echo(
            "no live grants to revoke" if grant_id is None else f"grant {grant_id} was already revoked"
        )
        return
    click.echo(
        f"revoked {len(revoked)} grant(s) and {tokens} live access token(s): "
        + " ".join(r["id"] for r in revoked)
    )


@token.command("revoke")
@DATA_DIR
@CONFIG
@DATABASE
@click.argument("jti")
@JSON
def token_revoke(
    data_dir: Path | None, config_file: Path | None, database_url: str | None, jti: str, as_json: bool
) -> None:
    """Revoke one access token by its jti (RFC 7009 2.1); its grant and refresh token stay."""
    from corridor.audit.events import Event

    settings = load_settings(data_dir, config_file, database_url=database_url)
    store = migrated_store(settings)
    row = store.grants.access_token(jti)
    if row is None:
        raise click.ClickException(f"no access token with jti {jti!r}")
    now = time.time()
    with store.unit_of_work() as uow:
        revoked = uow.grants.revoke_access_token(jti, now)
        if revoked:
            about = {"client_id": row["client_id"], "user_id": row["user_id"], "grant_id": row["grant_id"]}
            _record(uow, settings.issuer, Event.REVOCATION_ACCESS_TOKEN, now, token_jti=jti, **about)
    if as_json:
        echo_json({"jti": jti, "revoked": revoked, "grant_id": row["grant_id"]})
        return
    click.echo(f"revoked access token {jti}" if revoked else f"access token {jti} was already revoked")
