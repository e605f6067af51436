"""``corridor user``: end users and their factors (``user add``, ``list``, ``totp``, ``enrol``,
``passkeys``, ``remove``)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import click

from corridor.cli.common import CONFIG, DATA_DIR, JSON, echo_json, iso_time, load_settings, migrated_store
from corridor.core.randomness import new_id


@click.group()
def user() -> None:
    """Manage end users."""


@user.command("add")
@DATA_DIR
@CONFIG
@click.argument("username")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
def user_add(data_dir: Path | None, config_file: Path | None, username: str, password_stdin: bool) -> None:
    """Add a user (the password is hashed with Argon2id)."""
    from argon2 import PasswordHasher

    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise click.ClickException("the password must have at least 8 characters")
    typed, username = username, _username(username, new=True)
    store = migrated_store(load_settings(data_dir, config_file))
    if store.users.by_name(username) is not None:  # the same name after RFC 8265 (issue 13 C6)
        same = "" if typed == username else f" ({typed!r} is {username!r} under RFC 8265 UsernameCaseMapped)"
        raise click.ClickException(f"user {username!r} already exists{same}")
    store.users.add(new_id(), username, PasswordHasher().hash(password), time.time())
    click.echo(f"added {username}")


def _username(name: str, new: bool = False) -> str:
    """The stored form of a user name given on the command line (server/usernames.py)."""
    from corridor.server.usernames import UsernameError, enforce, new_username

    try:
        return new_username(name) if new else enforce(name)
    except UsernameError as exc:
        raise click.ClickException(f"user name {name!r}: {exc}") from exc


@user.command("list")
@DATA_DIR
@CONFIG
@JSON
def user_list(data_dir: Path | None, config_file: Path | None, as_json: bool) -> None:
    """List users."""
    rows = migrated_store(load_settings(data_dir, config_file)).users.all()
    if as_json:
        echo_json([{"sub": r["id"], "username": r["username"]} for r in rows])
        return
    for row in rows:
        click.echo(f"{row['username']}\t{row['id']}")


@user.command("totp")
@DATA_DIR
@CONFIG
@click.argument("username")
@click.option("--remove", is_flag=True, help="Remove the user's TOTP second factor.")
def user_totp(data_dir: Path | None, config_file: Path | None, username: str, remove: bool) -> None:
    """Enrol a TOTP second factor (RFC 6238) and print its provisioning URI: scan it with an
    authenticator app. Step-up to acr "mfa" (RFC 9470) asks for a code from it."""
    import pyotp

    username = _username(username)
    settings = load_settings(data_dir, config_file)
    store = migrated_store(settings)
    secret = None if remove else pyotp.random_base32()
    if not store.users.set_totp_secret(username, secret):
        raise click.ClickException(f"no user {username!r}")
    if secret is None:
        click.echo(f"removed the TOTP second factor of {username}")
        return
    issuer = urlsplit(settings.issuer).hostname or "Corridor"
    click.echo(pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=f"Corridor ({issuer})"))


@user.command("enrol")
@DATA_DIR
@CONFIG
@click.argument("username")
def user_enrol(data_dir: Path | None, config_file: Path | None, username: str) -> None:
    """Print a single-use link that lets USERNAME add a passkey (valid 15 minutes by default).

    Outside dev mode a user's first strong factor is bound this way (or with ``user totp``):
    a password alone never adds a passkey. Send the link to the user over a channel you trust;
    they also need the account's password."""
    from corridor.server.enrolment import issue_link
    from corridor.server.passkeys import relying_party

    settings = load_settings(data_dir, config_file)
    if relying_party(settings.issuer) is None:
        raise click.ClickException(f"passkeys need an issuer with a host name, not {settings.issuer}")
    store = migrated_store(settings)
    found = store.users.by_name(username)
    if found is None:
        raise click.ClickException(f"no user {username!r}")
    link = issue_link(store, settings, found, time.time())
    minutes = settings.enrolment_link_lifetime // 60
    click.echo(link)
    click.echo(f"valid {minutes} minutes, once; {username} also needs the account's password", err=True)


@user.command("passkeys")
@DATA_DIR
@CONFIG
@click.argument("username")
@click.option("--remove", "remove", metavar="CREDENTIAL_ID", help="Remove one passkey (a lost device).")
@JSON
def user_passkeys(
    data_dir: Path | None, config_file: Path | None, username: str, remove: str | None, as_json: bool
) -> None:
    """List a user's passkeys (WebAuthn credentials), or remove one. A user with a second factor
    adds passkeys from the sign-in pages; the first one comes from ``corridor user enrol``
    (or from the sign-in pages when ``self_service_enrolment`` is on, as in dev mode)."""
    username = _username(username)
    store = migrated_store(load_settings(data_dir, config_file))
    user = store.users.by_name(username)
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    if remove is not None:
        if not store.users.remove_passkey(user["id"], remove):
            raise click.ClickException(f"{username} has no passkey {remove!r}")
        click.echo(f"removed passkey {remove} of {username}")
        return
    rows = [
        {
            "credential_id": row["credential_id"],
            "aaguid": row["aaguid"],
            "transports": json.loads(row["transports"]),
            "backed_up": bool(row["backed_up"]),
            "sign_count": row["sign_count"],
            "created_at": row["created_at"],
            "last_used_at": row["last_used_at"],
        }
        for row in store.users.passkeys(user["id"])
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        used = iso_time(row["last_used_at"]) if row["last_used_at"] else "never used"
        click.echo(f"{row['credential_id']}\tadded {iso_time(row['created_at'])}\t{used}")


@user.command("remove")
@DATA_DIR
@CONFIG
@click.argument("username")
def user_remove(data_dir: Path | None, config_file: Path | None, username: str) -> None:
    """Remove a user."""
    username = _username(username)
    if not migrated_store(load_settings(data_dir, config_file)).users.remove(username):
        raise click.ClickException(f"no user {username!r}")
    click.echo(f"removed {username}")
