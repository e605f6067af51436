"""``corridor login``: one FAPI 2.0 flow with corridor.client and a loopback callback;
``corridor call``: one request to an API with the token it got and the DPoP key it saved
(issue 18: so a person can call the demo API by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def authorization_details_option(value: str | None) -> list[dict[str, Any]] | None:
    """``--authorization-details JSON|@FILE`` (RFC 9396 2), or one line saying why not."""
    from corridor.client.login import read_authorization_details

    if value is None:
        return None
    try:
        return read_authorization_details(value)
    except ValueError as exc:
        raise click.ClickException(f"--authorization-details: {exc}") from exc


@click.command()
@click.option("--issuer", required=True, help="The authorization server's issuer identifier.")
@click.option("--client-id", required=True)
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The client's private JWK (JSON).",
)
@click.option("--scope", default="openid", show_default=True)
@click.option("--resource", default=None, help="RFC 8707 resource the token is for.")
@click.option(
    "--port",
    type=int,
    default=8765,
    show_default=True,
    help="Loopback port; the client must have http://127.0.0.1:PORT/callback registered.",
)
@click.option(
    "--ca",
    "ca_file",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="CA file to trust (Corridor dev mode: .corridor/tls/ca.pem).",
)
@click.option(
    "--timeout", type=float, default=300, show_default=True, help="Seconds to wait for the browser."
)
@click.option("--show-tokens", is_flag=True, help="Print the tokens instead of redacting them.")
@click.option(
    "--authorization-details",
    "authorization_details",
    default=None,
    metavar="JSON|@FILE",
    help="RFC 9396 authorization_details: a JSON array of objects, or @FILE holding one.",
)
@click.option(
    "--save-key",
    "save_key",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write the DPoP private JWK the tokens are bound to into this new file (0600).",
)
@click.option(
    "--save-tokens",
    "save_tokens",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write the token response, unredacted, into this new file (0600), for `corridor call`.",
)
def login(
    issuer: str,
    client_id: str,
    key_file: str,
    scope: str,
    resource: str | None,
    port: int,
    ca_file: str | None,
    timeout: float,
    show_tokens: bool,
    authorization_details: str | None,
    save_key: str | None,
    save_tokens: str | None,
) -> None:
    """Run one FAPI 2.0 flow (PAR, PKCE, private_key_jwt, DPoP) with a loopback callback.

    With --save-key FILE the DPoP key the tokens are bound to is kept, so `corridor call` (or
    any DPoP client) can use the access token afterwards."""
    from corridor.client.errors import ClientError
    from corridor.client.flow import FapiClient
    from corridor.client.login import LoopbackCallback, redacted, to_json
    from corridor.core.jose import JoseFailure, SigningKey
    from corridor.core.private_files import write_private

    details = authorization_details_option(authorization_details)
    for option, path in (("--save-key", save_key), ("--save-tokens", save_tokens)):
        if path is not None and Path(path).exists():
            raise click.ClickException(f"{option}: {path} exists; name a new file")
    try:
        key = SigningKey(json.loads(Path(key_file).read_text()))
    except (ValueError, JoseFailure) as exc:
        raise click.ClickException(f"--key: not a private JWK ({exc})") from exc
    dpop_key = SigningKey.generate("ES256")
    try:
        callback = LoopbackCallback(port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    client = FapiClient(
        issuer, client_id, redirect_uri=callback.redirect_uri, key=key, ca_file=ca_file, dpop_key=dpop_key
    )
    try:
        url, handle = client.start(scope, resource=resource, authorization_details=details)
        click.echo(f"Open this URL in your browser:\n{url}", err=True)
        click.echo(json.dumps({"authorization_url": url}))
        response = callback.wait(timeout)
        if response is None:
            raise click.ClickException("no authorization response arrived in time")
        tokens = client.finish(response, handle)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        client.close()
    body = redacted(tokens, show_tokens)
    # Secrets, so 0600 from their first byte: the key the token is bound to (RFC 9449 6: cnf.jkt)
    # and the token response.
    for option, path, secret in (
        ("--save-key", save_key, dpop_key.private_jwk()),
        ("--save-tokens", save_tokens, dict(tokens.raw)),
    ):
        if path is None:
            continue
        try:
            write_private(Path(path), (json.dumps(secret, indent=2) + "\n").encode())
        except OSError as exc:
            raise click.ClickException(f"{option}: cannot write {path}: {exc.strerror}") from exc
    if save_key is not None:
        body["dpop_key_file"] = save_key
        body["dpop_jkt"] = dpop_key.thumbprint()
    if save_tokens is not None:
        body["token_file"] = save_tokens
    click.echo(to_json(body))


@click.command()
@click.argument("url")
@click.option(
    "--token-file",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The token response `corridor login --save-tokens` wrote (its access_token is used).",
)
@click.option(
    "--dpop-key",
    "dpop_key_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The DPoP private JWK the token is bound to (`corridor login --save-key`).",
)
@click.option("--method", default="GET", show_default=True, type=click.Choice(["GET", "POST", "DELETE"]))
@click.option("--data", "json_body", default=None, metavar="JSON", help="A JSON request body (POST).")
@click.option("--ca", "ca_file", default=None, type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help='Print {"status", "body"} as one JSON object.')
def call(
    url: str,
    token_file: str,
    dpop_key_file: str,
    method: str,
    json_body: str | None,
    ca_file: str | None,
    as_json: bool,
) -> None:
    """Call an API with a DPoP-bound access token: a fresh proof (RFC 9449 7) for each try, one
    retry with the API's nonce (RFC 9449 9). Prints the status line and the answer; exit 1 on
    an error status."""
    import ssl

    import httpx

    from corridor.core.dpop import make_proof
    from corridor.core.jose import JoseFailure, SigningKey

    try:
        token = json.loads(Path(token_file).read_text())["access_token"]
        if not isinstance(token, str) or "redacted" in token:
            raise ValueError("save it with corridor login --save-tokens")
    except (ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(f"--token-file: no usable access_token ({exc})") from exc
    try:
        key = SigningKey(json.loads(Path(dpop_key_file).read_text()))
    except (ValueError, JoseFailure) as exc:
        raise click.ClickException(f"--dpop-key: not a private JWK ({exc})") from exc
    try:
        body = None if json_body is None else json.loads(json_body)
    except ValueError as exc:
        raise click.ClickException(f"--data: not JSON ({exc})") from exc
    context = ssl.create_default_context(cafile=ca_file)
    htu = str(httpx.URL(url).copy_with(query=None, fragment=None))
    nonce: str | None = None
    try:
        with httpx.Client(verify=context, timeout=20) as http:
            for _ in range(2):
                proof = make_proof(key, method, htu, nonce=nonce, access_token=token)
                headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
                response = http.request(method, url, headers=headers, json=body)
                challenge = response.headers.get("www-authenticate", "")
                if response.status_code == 401 and "use_dpop_nonce" in challenge and nonce is None:
                    nonce = response.headers.get("dpop-nonce")
                    if nonce:
                        continue
                break
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot call {url}: {exc}") from exc
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text
    if as_json:
        click.echo(json.dumps({"status": response.status_code, "body": answer}, ensure_ascii=False))
    else:
        click.echo(f"{response.status_code} {response.reason_phrase}")
        click.echo(answer if isinstance(answer, str) else json.dumps(answer, indent=2, ensure_ascii=False))
    if response.status_code >= 400:
        from corridor.core.text import escape_controls

        reason = response.headers.get("www-authenticate") or "no WWW-Authenticate"
        raise click.ClickException(f"{response.status_code}: {escape_controls(reason)}")
