"""``corridor user``: end users and their factors (``user add``, ``list``, ``show``, ``passwd``,
``disable``, ``enable``, ``totp``, ``enrol``, ``passkeys``, ``remove``). New passwords go through
the policy of server/passwords.py (NIST SP 800-63B 5.1.1.2)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from corridor.cli.common import CONFIG, DATA_DIR, JSON, echo_json, iso_time, load_settings, migrated_store
from corridor.core.randomness import new_id

PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, required=True, help="Read the password from standard input (one line)."
)


@click.group()
def user() -> None:
    """Manage end users."""


@user.command("add")
@DATA_DIR
@CONFIG
@click.argument("username")
@PASSWORD_STDIN
@JSON
def user_add(
    data_dir: Path | None, config_file: Path | None, username: str, password_stdin: bool, as_json: bool
) -> None:
    """Add a user. The password (NIST SP 800-63B 5.1.1.2: at least 8 characters, 15 or more
    recommended, not the user name, not a common or breached one) is hashed with Argon2id."""
    from corridor.server.passwords import hash_password

    typed, username = username, _username(username, new=True)
    password = _new_password(username)
    store = migrated_store(load_settings(data_dir, config_file))
    if store.users.by_name(username) is not None:  # the same name after RFC 8265 (issue 13 C6)
        same = "" if typed == username else f" ({typed!r} is {username!r} under RFC 8265 UsernameCaseMapped)"
        raise click.ClickException(f"user {username!r} already exists{same}")
    sub = new_id()
    store.users.add(sub, username, hash_password(password), time.time())
    if as_json:
        echo_json({"sub": sub, "username": username})
        return
    click.echo(f"added {username}")


def _username(name: str, new: bool = False) -> str:
    """The stored form of a user name given on the command line (server/usernames.py)."""
    from corridor.server.usernames import UsernameError, enforce, new_username

    try:
        return new_username(name) if new else enforce(name)
    except UsernameError as exc:
        raise click.ClickException(f"user name {name!r}: {exc}") from exc


def _new_password(username: str) -> str:
    """One line of standard input (UTF-8), through the password policy; its NFKC form."""
    from corridor.server.passwords import MAX_INPUT_BYTES, MAX_LENGTH, PasswordRefused, check_new_password

    raw = sys.stdin.buffer.readline(MAX_INPUT_BYTES + 1)
    if not raw:
        raise click.ClickException("no password on standard input (e.g. echo 'PASSWORD' | corridor user ...)")
    if len(raw) > MAX_INPUT_BYTES:
        raise click.ClickException(f"the password is longer than {MAX_LENGTH} characters")
    line = raw.removesuffix(b"\n").removesuffix(b"\r")
    try:
        return check_new_password(line.decode("utf-8"), username)
    except UnicodeDecodeError:
        raise click.ClickException("the password is not UTF-8 text") from None
    except PasswordRefused as exc:
        raise click.ClickException(str(exc)) from None


def _existing(store: Any, username: str) -> dict[str, Any]:
    """The stored user of a name given on the command line, or a one-line error."""
    found: dict[str, Any] | None = store.users.by_name(_username(username))
    if found is None:
        raise click.ClickException(f"no user {username!r}")
    return found


def _store_and_user(
    data_dir: Path | None, config_file: Path | None, username: str
) -> tuple[Any, dict[str, Any]]:
    """The migrated store of these settings and the user a command names."""
    store = migrated_store(load_settings(data_dir, config_file))
    return store, _existing(store, username)


@user.command("list")
@DATA_DIR
@CONFIG
@JSON
def user_list(data_dir: Path | None, config_file: Path | None, as_json: bool) -> None:
    """List users."""
    rows = migrated_store(load_settings(data_dir, config_file)).users.all()
    if as_json:
        echo_json(
            [
                {
                    "sub": r["id"],
                    "username": r["username"],
                    "created": iso_time(r["created_at"]),
                    "disabled": r["disabled_at"] is not None,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        click.echo("no users (add one with corridor user add NAME --password-stdin)")
    for row in rows:
        disabled = "\tdisabled" if row["disabled_at"] is not None else ""
        click.echo(f"{row['username']}\t{row['id']}{disabled}")


@user.command("show")
@DATA_DIR
@CONFIG
@click.argument("username")
@JSON
def user_show(data_dir: Path | None, config_file: Path | None, username: str, as_json: bool) -> None:
    """Show a user: identifiers, state, second factors and live grants (never a secret)."""
    store, found = _store_and_user(data_dir, config_file, username)
    shown = {
        "sub": found["id"],
        "username": found["username"],
        "created": iso_time(found["created_at"]),
        "password_changed": iso_time(found["password_changed_at"]) if found["password_changed_at"] else None,
        "disabled": found["disabled_at"] is not None,
        "disabled_since": iso_time(found["disabled_at"]) if found["disabled_at"] is not None else None,
        "totp": bool(found["totp_secret"]),
        "passkeys": len(store.users.passkeys(found["id"])),
        "active_grants": store.grants.count_active(found["id"], time.time()),
    }
    if as_json:
        echo_json(shown)
        return
    for key, value in shown.items():
        words = "yes" if value is True else "no" if value is False else "-" if value is None else value
        click.echo(f"{key.replace('_', ' ')}: {words}")


@user.command("passwd")
@DATA_DIR
@CONFIG
@click.argument("username")
@PASSWORD_STDIN
@click.option(
    "--revoke-grants", is_flag=True, help="Also revoke the user's grants (refresh and access tokens)."
)
@JSON
def user_passwd(
    data_dir: Path | None,
    config_file: Path | None,
    username: str,
    password_stdin: bool,
    revoke_grants: bool,
    as_json: bool,
) -> None:
    """Set a new password (the policy of ``user add``; Argon2id). The user's sign-in sessions
    end (browser and admin pages); with ``--revoke-grants`` their grants are revoked too."""
    from corridor.server.passwords import hash_password

    store, found = _store_and_user(data_dir, config_file, username)
    password_hash = hash_password(_new_password(found["username"]))
    now = time.time()
    with store.unit_of_work() as uow:  # one transaction: the new password and what it ends
        uow.users.set_password(found["id"], password_hash, now)
        sessions = uow.requests.end_user_sessions(found["id"])
        revoked = uow.grants.revoke_user(found["id"], now, "password_changed") if revoke_grants else None
        kept = 0 if revoked else uow.grants.count_active(found["id"], now)
    name = found["username"]
    if as_json:
        echo_json(
            {
                "username": name,
                "sessions_ended": sessions,
                "grants_revoked": revoked.grants if revoked else 0,
                "access_tokens_revoked": revoked.access_tokens if revoked else 0,
                "grants_kept": kept,
            }
        )
        return
    click.echo(f"changed the password of {name}; ended {_count(sessions, 'sign-in session')}")
    if revoked:
        click.echo(_revoked_words(revoked))
    elif kept:
        click.echo(
            f"{_count(kept, 'grant')} to applications kept; revoke them with --revoke-grants "
            f"or corridor grant revoke --user {name}"
        )


@user.command("disable")
@DATA_DIR
@CONFIG
@click.argument("username")
@JSON
def user_disable(data_dir: Path | None, config_file: Path | None, username: str, as_json: bool) -> None:
    """Stop an account acting now: no sign-in (the form answers as for a wrong password), its
    sessions end, and its grants with their refresh and access tokens are revoked (introspection
    says inactive at once). ``user enable`` allows sign-in again; revoked grants stay revoked."""
    store, found = _store_and_user(data_dir, config_file, username)
    now = time.time()
    with store.unit_of_work() as uow:  # one transaction: the flag and everything it stops
        newly = uow.users.set_disabled(found["id"], now)
        sessions = uow.requests.end_user_sessions(found["id"])
        revoked = uow.grants.revoke_user(found["id"], now, "user_disabled")
    since = now if newly else found["disabled_at"]
    name = found["username"]
    if as_json:
        echo_json(
            {
                "username": name,
                "disabled_since": iso_time(since),
                "already_disabled": not newly,
                "sessions_ended": sessions,
                "grants_revoked": revoked.grants,
                "access_tokens_revoked": revoked.access_tokens,
            }
        )
        return
    state = f"disabled {name}" if newly else f"{name} was already disabled (since {iso_time(since)})"
    click.echo(f"{state}; ended {_count(sessions, 'sign-in session')}; {_revoked_words(revoked)}")
    click.echo(
        "access tokens that a resource server checks without introspection stay valid until they "
        "expire (access_token_lifetime)"
    )


@user.command("enable")
@DATA_DIR
@CONFIG
@click.argument("username")
@JSON
def user_enable(data_dir: Path | None, config_file: Path | None, username: str, as_json: bool) -> None:
    """Let a disabled user sign in again (their revoked grants stay revoked)."""
    store, found = _store_and_user(data_dir, config_file, username)
    enabled = store.users.set_disabled(found["id"], None)
    if as_json:
        echo_json({"username": found["username"], "already_enabled": not enabled})
        return
    click.echo(f"enabled {found['username']}" if enabled else f"{found['username']} was not disabled")


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _revoked_words(revoked: Any) -> str:
    return f"revoked {_count(revoked.grants, 'grant')} and {_count(revoked.access_tokens, 'access token')}"


@user.command("totp")
@DATA_DIR
@CONFIG
@click.argument("username")
@click.option("--remove", is_flag=True, help="Remove the user's TOTP second factor.")
@click.option("--replace", is_flag=True, help="Replace an existing TOTP secret (the old one stops working).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the provisioning URI to this file (created 0600) instead of the terminal.",
)
@JSON
def user_totp(
    data_dir: Path | None,
    config_file: Path | None,
    username: str,
    remove: bool,
    replace: bool,
    output: Path | None,
    as_json: bool,
) -> None:
    """Enrol a TOTP second factor (RFC 6238) and print its provisioning URI: scan it with an
    authenticator app. Step-up to acr "mfa" (RFC 9470) asks for a code from it. The URI holds
    the secret: it goes to the terminal, or with ``--output`` to a file only its owner can read."""
    import pyotp

    from corridor.core.private_files import write_private

    settings = load_settings(data_dir, config_file)
    store = migrated_store(settings)
    found = _existing(store, username)
    name = found["username"]
    if remove:
        if not found["totp_secret"]:
            raise click.ClickException(f"{name} has no TOTP second factor")
        store.users.set_totp_secret(name, None)
        if as_json:
            echo_json({"username": name, "removed": True})
            return
        click.echo(f"removed the TOTP second factor of {name}")
        return
    if found["totp_secret"] and not replace:
        raise click.ClickException(
            f"{name} already has a TOTP secret; give --replace to replace it (the old one stops working)"
        )
    secret = pyotp.random_base32()
    issuer = urlsplit(settings.issuer).hostname or "Corridor"
    uri = pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=f"Corridor ({issuer})")
    if output is not None:
        try:
            write_private(output, (uri + "\n").encode())
        except OSError as exc:
            raise click.ClickException(f"{output}: cannot write it: {exc.strerror}") from None
    store.users.set_totp_secret(name, secret)
    if output is not None:
        if as_json:
            echo_json({"username": name, "replaced": bool(found["totp_secret"]), "output": str(output)})
            return
        click.echo(f"wrote the provisioning URI of {name} to {output} (mode 0600)")
        return
    if as_json:
        echo_json({"username": name, "replaced": bool(found["totp_secret"]), "provisioning_uri": uri})
        return
    click.echo(uri)


@user.command("enrol")
@DATA_DIR
@CONFIG
@click.argument("username")
@JSON
def user_enrol(data_dir: Path | None, config_file: Path | None, username: str, as_json: bool) -> None:
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
    found = _existing(store, username)
    link = issue_link(store, settings, found, time.time())
    if as_json:
        lifetime = settings.enrolment_link_lifetime
        echo_json({"username": found["username"], "link": link, "expires_in": lifetime})
        return
    minutes = settings.enrolment_link_lifetime // 60
    click.echo(link)
    name = found["username"]
    click.echo(f"valid {minutes} minutes, once; {name} also needs the account's password", err=True)


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
    store, user = _store_and_user(data_dir, config_file, username)
    username = user["username"]
    if remove is not None:
        if not store.users.remove_passkey(user["id"], remove):
            raise click.ClickException(f"{username} has no passkey {remove!r}")
        if as_json:
            echo_json({"username": username, "removed": remove})
            return
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
    if not rows:
        click.echo(f"{username} has no passkeys")
    for row in rows:
        used = iso_time(row["last_used_at"]) if row["last_used_at"] else "never used"
        click.echo(f"{row['credential_id']}\tadded {iso_time(row['created_at'])}\t{used}")


@user.command("remove")
@DATA_DIR
@CONFIG
@click.argument("username")
@JSON
def user_remove(data_dir: Path | None, config_file: Path | None, username: str, as_json: bool) -> None:
    """Remove a user, their factors and sessions; their grants are revoked in the same transaction."""
    store, found = _store_and_user(data_dir, config_file, username)
    with store.unit_of_work() as uow:
        if not uow.users.remove(found["username"]):
            raise click.ClickException(f"no user {username!r}")
        sessions = uow.requests.end_user_sessions(found["id"])
        revoked = uow.grants.revoke_user(found["id"], time.time(), "user_removed")
    if as_json:
        echo_json(
            {
                "username": found["username"],
                "sessions_ended": sessions,
                "grants_revoked": revoked.grants,
                "access_tokens_revoked": revoked.access_tokens,
            }
        )
        return
    click.echo(f"removed {found['username']}; {_revoked_words(revoked)}")
