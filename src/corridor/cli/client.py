"""``corridor client``: register and inspect clients (``client add``, ``update``, ``keygen``,
``list``, ``show``, ``remove``)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from corridor.cli.common import CONFIG, DATA_DIR, JSON, echo_json, load_settings, migrated_store
from corridor.core.randomness import new_secret_token

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def client() -> None:
    """Register and inspect clients."""


def _client_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"client_id": row["client_id"], "client_name": row["name"], **json.loads(row["metadata"])}


def _redirect_uris(required: bool) -> Callable[[F], F]:
    return click.option(
        "--redirect-uri", "redirect_uris", multiple=True, required=required, help="Registered redirect URI."
    )


_GRANT_TYPE = click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]),
    help="A grant it may use (repeatable; default: authorization_code and refresh_token). "
    "client_credentials alone needs no --redirect-uri.",
)


#: The options `client add` and `client update` share, with one meaning in both.
_KEY_OPTIONS = (
    click.option(
        "--jwks-file", type=click.File("r"), default=None, help="Public JWKS (JSON file, or - for stdin)."
    ),
    click.option("--jwks-uri", default=None, help="https URL of the client's JWKS."),
    click.option(
        "--certificate",
        "certificates",
        multiple=True,
        type=click.Path(dir_okay=False, exists=True),
        help="A client certificate (PEM) to register in the JWKS x5c (self-signed mTLS).",
    ),
)
_SUBJECT_OPTIONS = (
    click.option(
        "--tls-client-auth-subject-dn", default=None, help="tls_client_auth: the certificate subject DN."
    ),
    click.option("--tls-client-auth-san-dns", default=None, help="tls_client_auth: a dNSName SAN."),
    click.option("--tls-client-auth-san-uri", default=None, help="tls_client_auth: a URI SAN."),
    click.option("--tls-client-auth-san-ip", default=None, help="tls_client_auth: an iPAddress SAN."),
    click.option("--tls-client-auth-san-email", default=None, help="tls_client_auth: an rfc822Name SAN."),
)
_MESSAGE_OPTIONS = (
    click.option(
        "--response-mode",
        "response_modes",
        multiple=True,
        type=click.Choice(["query", "jwt", "query.jwt"]),
        help="Restrict the client to these response modes; jwt: signed responses (JARM).",
    ),
    click.option(
        "--authorization-signed-response-alg",
        type=click.Choice(["PS256", "ES256", "EdDSA"]),
        default=None,
        help="JARM: the alg of its signed authorization responses (default: the AS's signing_alg).",
    ),
)
_AUTH_METHODS = click.Choice(["private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"])
_SENDER_CONSTRAINTS = click.Choice(["dpop", "mtls"])


def _options(*groups: tuple[Callable[[F], F], ...]) -> Callable[[F], F]:
    def apply(command: F) -> F:
        for option in reversed([o for group in groups for o in group]):
            command = option(command)
        return command

    return apply


def _given_keys(jwks_file: Any, jwks_uri: str | None, certificates: tuple[str, ...]) -> Any:
    """The JWKS of --jwks-file and --certificate (None when neither is given)."""
    from corridor.server.clients import ClientMetadataError, jwk_for_certificate

    if jwks_file is not None and jwks_uri is not None:
        raise click.ClickException("give --jwks-file or --jwks-uri, not both")
    jwks = None
    if jwks_file is not None:
        try:
            jwks = json.load(jwks_file)
        except ValueError as exc:
            raise click.ClickException("--jwks-file is not JSON") from exc
        if isinstance(jwks, dict) and "kty" in jwks:
            jwks = {"keys": [jwks]}
    if certificates:
        try:
            extra = [jwk_for_certificate(Path(path).read_bytes()) for path in certificates]
        except ClientMetadataError as exc:
            raise click.ClickException(f"--certificate: {exc}") from exc
        jwks = {"keys": [*(jwks or {}).get("keys", []), *extra]}
    return jwks


def _metadata(settings: Any, **registration: Any) -> dict[str, Any]:
    """build_client_metadata, its refusals as one line (the one validation of add and update)."""
    from corridor.server.clients import ClientMetadataError, build_client_metadata

    try:
        return build_client_metadata(known_scopes=list(settings.scopes), **registration)
    except ClientMetadataError as exc:
        raise click.ClickException(f"{exc.error}: {exc}") from exc


def _check_resources(store: Any, resources: Any) -> None:
    known = {row["identifier"] for row in store.clients.resource_servers()}
    unknown = [r for r in resources if r not in known]
    if unknown:
        raise click.ClickException(
            f"unknown resource server(s): {' '.join(unknown)} (see corridor resource add)"
        )


@client.command("add")
@DATA_DIR
@CONFIG
@click.option("--name", required=True, help="Name shown on the consent page.")
@_redirect_uris(required=False)
@_GRANT_TYPE
@_options(_KEY_OPTIONS)
@click.option(
    "--auth-method",
    type=_AUTH_METHODS,
    default="private_key_jwt",
    show_default=True,
    help="Client authentication (FAPI2 5.3.2.1-6).",
)
@_options(_SUBJECT_OPTIONS)
@click.option(
    "--sender-constraint",
    type=_SENDER_CONSTRAINTS,
    default="dpop",
    show_default=True,
    help="How access tokens are bound (RFC 9449 or RFC 8705 3).",
)
@click.option(
    "--use-mtls-endpoint-aliases", is_flag=True, help="The client calls every endpoint at its mTLS alias."
)
@click.option(
    "--scope", default="openid", show_default=True, help="Space-separated scopes the client may ask for."
)
@click.option("--resource", "resources", multiple=True, help="Resource servers it may use (default: all).")
@click.option(
    "--require-signed-request-object",
    is_flag=True,
    help="FAPI 2.0 Message Signing: PAR only with a signed request object (RFC 9101 10.5).",
)
@_options(_MESSAGE_OPTIONS)
@click.option("--client-id", default=None, help="Chosen client_id (default: generated).")
@click.option("--json", "as_json", is_flag=True, help="Print the registration as JSON.")
def client_add(
    data_dir: Path | None,
    config_file: Path | None,
    name: str,
    redirect_uris: tuple[str, ...],
    grant_types: tuple[str, ...],
    jwks_file: Any,
    jwks_uri: str | None,
    certificates: tuple[str, ...],
    auth_method: str,
    tls_client_auth_subject_dn: str | None,
    tls_client_auth_san_dns: str | None,
    tls_client_auth_san_uri: str | None,
    tls_client_auth_san_ip: str | None,
    tls_client_auth_san_email: str | None,
    sender_constraint: str,
    use_mtls_endpoint_aliases: bool,
    scope: str,
    resources: tuple[str, ...],
    require_signed_request_object: bool,
    response_modes: tuple[str, ...],
    authorization_signed_response_alg: str | None,
    client_id: str | None,
    as_json: bool,
) -> None:
    """Register a client: private_key_jwt or mTLS authentication, DPoP or mTLS-bound tokens."""
    from corridor.server.clients import is_identifier

    settings = load_settings(data_dir, config_file)
    jwks = _given_keys(jwks_file, jwks_uri, certificates)
    subject = {
        "tls_client_auth_subject_dn": tls_client_auth_subject_dn,
        "tls_client_auth_san_dns": tls_client_auth_san_dns,
        "tls_client_auth_san_uri": tls_client_auth_san_uri,
        "tls_client_auth_san_ip": tls_client_auth_san_ip,
        "tls_client_auth_san_email": tls_client_auth_san_email,
    }
    meta = _metadata(
        settings,
        redirect_uris=redirect_uris,
        grant_types=grant_types or ("authorization_code", "refresh_token"),
        jwks=jwks,
        jwks_uri=jwks_uri,
        scope=scope,
        resources=resources,
        token_endpoint_auth_method=auth_method,
        sender_constraint=sender_constraint,
        tls_subject={k: v for k, v in subject.items() if v},
        use_mtls_endpoint_aliases=use_mtls_endpoint_aliases,
        require_signed_request_object=require_signed_request_object,
        response_modes=response_modes,
        authorization_signed_response_alg=authorization_signed_response_alg,
    )
    client_id = client_id or "c-" + new_secret_token()[:22]
    if not is_identifier(client_id):
        raise click.ClickException("client_id must be printable, without spaces, at most 255 characters")
    if re.fullmatch(r"[0-9a-f]{32}", client_id):
        # FAPI2 6.7 (AS36): user subjects are 32 hex digits; a client_id must not look like one.
        raise click.ClickException("client_id must not look like a user identifier (32 hex digits)")
    store = migrated_store(settings)
    if store.clients.get(client_id) is not None:
        raise click.ClickException(f"client {client_id!r} already exists")
    _check_resources(store, resources)
    store.clients.add(client_id, name, meta, time.time())
    if as_json:
        echo_json({"client_id": client_id, "client_name": name, **meta})
    else:
        click.echo(client_id)


def _registration(meta: dict[str, Any]) -> dict[str, Any]:
    """The build_client_metadata arguments that give a stored registration back."""
    from corridor.core.x509 import SUBJECT_PARAMETERS

    return {
        "redirect_uris": meta["redirect_uris"],
        "grant_types": meta.get("grant_types") or ["authorization_code", "refresh_token"],
        "jwks": meta.get("jwks"),
        "jwks_uri": meta.get("jwks_uri"),
        "scope": meta.get("scope", ""),
        "resources": meta.get("resources", []),
        "token_endpoint_auth_method": meta["token_endpoint_auth_method"],
        "sender_constraint": "dpop" if meta.get("dpop_bound_access_tokens") else "mtls",
        "tls_subject": {p: meta[p] for p in SUBJECT_PARAMETERS if p in meta},
        "use_mtls_endpoint_aliases": bool(meta.get("use_mtls_endpoint_aliases")),
        "require_signed_request_object": bool(meta.get("require_signed_request_object")),
        "response_modes": meta.get("response_modes") or [],
        "authorization_signed_response_alg": meta.get("authorization_signed_response_alg"),
    }


@client.command("update")
@DATA_DIR
@CONFIG
@click.argument("client_id")
@click.option("--name", default=None, help="Name shown on the consent page.")
@_redirect_uris(required=False)
@_GRANT_TYPE
@_options(_KEY_OPTIONS)
@click.option("--auth-method", type=_AUTH_METHODS, default=None, help="Client authentication.")
@_options(_SUBJECT_OPTIONS)
@click.option("--sender-constraint", type=_SENDER_CONSTRAINTS, default=None, help="dpop or mtls.")
@click.option("--use-mtls-endpoint-aliases/--no-use-mtls-endpoint-aliases", default=None)
@click.option("--scope", default=None, help="Space-separated scopes the client may ask for.")
@click.option("--resource", "resources", multiple=True, help="Resource servers it may use.")
@click.option("--all-resources", is_flag=True, help="Lift the --resource restriction.")
@click.option("--require-signed-request-object/--no-require-signed-request-object", default=None)
@_options(_MESSAGE_OPTIONS)
@click.option("--any-response-mode", is_flag=True, help="Lift the --response-mode restriction.")
@JSON
def client_update(
    data_dir: Path | None,
    config_file: Path | None,
    client_id: str,
    name: str | None,
    redirect_uris: tuple[str, ...],
    grant_types: tuple[str, ...],
    jwks_file: Any,
    jwks_uri: str | None,
    certificates: tuple[str, ...],
    auth_method: str | None,
    tls_client_auth_subject_dn: str | None,
    tls_client_auth_san_dns: str | None,
    tls_client_auth_san_uri: str | None,
    tls_client_auth_san_ip: str | None,
    tls_client_auth_san_email: str | None,
    sender_constraint: str | None,
    use_mtls_endpoint_aliases: bool | None,
    scope: str | None,
    resources: tuple[str, ...],
    all_resources: bool,
    require_signed_request_object: bool | None,
    response_modes: tuple[str, ...],
    authorization_signed_response_alg: str | None,
    any_response_mode: bool,
    as_json: bool,
) -> None:
    """Change a client's registration: only the options given change, each validated as by
    `client add`. Running servers use it within registration_cache_seconds (default 2 s)."""
    settings = load_settings(data_dir, config_file)
    if resources and all_resources:
        raise click.ClickException("give --resource or --all-resources, not both")
    if response_modes and any_response_mode:
        raise click.ClickException("give --response-mode or --any-response-mode, not both")
    jwks = _given_keys(jwks_file, jwks_uri, certificates)
    store = migrated_store(settings)
    row = store.clients.get(client_id)
    if row is None:
        raise click.ClickException(f"no client {client_id!r}")
    registration = _registration(json.loads(row["metadata"]))
    changes: dict[str, Any] = {
        "redirect_uris": redirect_uris or None,
        "grant_types": grant_types or None,
        "scope": scope,
        "token_endpoint_auth_method": auth_method,
        "sender_constraint": sender_constraint,
        "use_mtls_endpoint_aliases": use_mtls_endpoint_aliases,
        "require_signed_request_object": require_signed_request_object,
        "authorization_signed_response_alg": authorization_signed_response_alg,
        "resources": [] if all_resources else resources or None,
        "response_modes": [] if any_response_mode else response_modes or None,
    }
    if grant_types and "authorization_code" not in grant_types and not redirect_uris:
        changes["redirect_uris"] = []  # RFC 7591 2: redirect URIs belong to the code flow only
    if jwks is not None or jwks_uri is not None:  # new keys replace the old ones, either kind
        changes.update(jwks=jwks, jwks_uri=jwks_uri)
    subject = {
        "tls_client_auth_subject_dn": tls_client_auth_subject_dn,
        "tls_client_auth_san_dns": tls_client_auth_san_dns,
        "tls_client_auth_san_uri": tls_client_auth_san_uri,
        "tls_client_auth_san_ip": tls_client_auth_san_ip,
        "tls_client_auth_san_email": tls_client_auth_san_email,
    }
    given = {k: v for k, v in subject.items() if v}
    if given:
        changes["tls_subject"] = given
    elif auth_method not in (None, "tls_client_auth"):
        changes["tls_subject"] = {}  # RFC 8705 2.1.2: a subject belongs to tls_client_auth only
    changes = {k: v for k, v in changes.items() if v is not None or k in ("jwks", "jwks_uri")}
    if not changes and name is None:
        raise click.ClickException("nothing to change: give at least one option (see --help)")
    meta = _metadata(settings, **{**registration, **changes})
    _check_resources(store, meta["resources"])
    name = name if name is not None else row["name"]
    if not name.strip():
        raise click.ClickException("--name must not be empty")
    if not store.clients.update(client_id, name, meta):
        raise click.ClickException(f"no client {client_id!r}")
    if as_json:
        echo_json({"client_id": client_id, "client_name": name, **meta})
        return
    click.echo(
        f"updated {client_id}; running servers use it within registration_cache_seconds "
        f"({settings.registration_cache_seconds:g} s)"
    )


@client.command("keygen")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--alg", type=click.Choice(["ES256", "PS256", "EdDSA"]), default="ES256", show_default=True)
def client_keygen(out: Path, alg: str) -> None:
    """Make a client signing key: the private JWK goes to OUT (mode 600), the public JWKS to
    OUT's name with .jwks.json, ready for `client add --jwks-file`."""
    from corridor.core.jose import SigningKey

    if out.exists():
        raise click.ClickException(f"{out} exists; not overwriting a key")
    key = SigningKey.generate(alg)
    out.touch(mode=0o600)
    out.write_text(json.dumps(key.private_jwk(), indent=2) + "\n")
    public = out.with_name(out.stem + ".jwks.json")
    public.write_text(json.dumps({"keys": [key.public_jwk]}, indent=2) + "\n")
    click.echo(str(public))


@client.command("list")
@DATA_DIR
@CONFIG
@JSON
def client_list(data_dir: Path | None, config_file: Path | None, as_json: bool) -> None:
    """List clients."""
    rows = migrated_store(load_settings(data_dir, config_file)).clients.all()
    if as_json:
        echo_json([_client_json(r) for r in rows])
        return
    if not rows:
        click.echo("no clients (add one with corridor client add)")
    for row in rows:
        click.echo(f"{row['client_id']}\t{row['name']}")


@client.command("show")
@DATA_DIR
@CONFIG
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is JSON.")
def client_show(data_dir: Path | None, config_file: Path | None, client_id: str, as_json: bool) -> None:
    """Show one client as JSON."""
    row = migrated_store(load_settings(data_dir, config_file)).clients.get(client_id)
    if row is None:
        raise click.ClickException(f"no client {client_id!r}")
    echo_json(_client_json(row))


@client.command("remove")
@DATA_DIR
@CONFIG
@click.argument("client_id")
def client_remove(data_dir: Path | None, config_file: Path | None, client_id: str) -> None:
    """Remove a client and revoke all of its grants and tokens at once."""
    removed = migrated_store(load_settings(data_dir, config_file)).clients.remove(client_id, time.time())
    if removed is None:
        raise click.ClickException(f"no client {client_id!r}")
    click.echo(
        f"removed {client_id} (revoked {removed.grants} grants, {removed.access_tokens} access tokens)"
    )
