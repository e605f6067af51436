"""``corridor login``: one FAPI 2.0 flow with corridor.client and a loopback callback."""

from __future__ import annotations

import json
from pathlib import Path

import click


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
) -> None:
    """Run one FAPI 2.0 flow (PAR, PKCE, private_key_jwt, DPoP) with a loopback callback."""
    from corridor.client.errors import ClientError
    from corridor.client.flow import FapiClient
    from corridor.client.login import LoopbackCallback, redacted, to_json
    from corridor.core.jose import JoseFailure, SigningKey

    try:
        key = SigningKey(json.loads(Path(key_file).read_text()))
    except (ValueError, JoseFailure) as exc:
        raise click.ClickException(f"--key: not a private JWK ({exc})") from exc
    try:
        callback = LoopbackCallback(port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    client = FapiClient(issuer, client_id, redirect_uri=callback.redirect_uri, key=key, ca_file=ca_file)
    try:
        url, handle = client.start(scope, resource=resource)
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
    click.echo(to_json(redacted(tokens, show_tokens)))
