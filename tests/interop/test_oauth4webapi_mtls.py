"""Interop: panva's oauth4webapi (a certified FAPI 2.0 client, Node) with mutual TLS (RFC 8705)
against our AS over real TLS: tls_client_auth client authentication and certificate-bound
access tokens, every back-channel call at the server's mtls_endpoint_aliases. Discovery, PAR
with PKCE S256, the iss and state checks, the code exchange, userinfo and a refresh are the
library's; the certificate travels through undici (Node's global fetch cannot carry one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.interop.conftest import Consent
from tests.interop.node import NodeFlow
from tests.pki import ClientCert, TestPKI
from tests.support import Client, Driver, decode_jwt

HERE = Path(__file__).parent
SCRIPT = HERE / "oauth4webapi_mtls_flow.mjs"
SCOPE = "openid profile offline_access accounts"
CLIENT_DN = "CN=oauth4webapi mtls client,O=Test"


@pytest.fixture
def node_flow(driver: Driver, pki: TestPKI) -> Iterator[tuple[NodeFlow, Client, ClientCert]]:
    cert = pki.issue(CLIENT_DN)
    client = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": CLIENT_DN},
    )
    env = {k: v for k, v in os.environ.items() if k != "NODE_EXTRA_CA_CERTS"}
    env.update(
        {
            # Trust comes only from the dev CA given to undici's Agent (`ca`).
            "CORRIDOR_CA_FILE": str(driver.as_.tls.ca_file),
            "CORRIDOR_CERT_FILE": str(cert.cert_file),
            "CORRIDOR_KEY_FILE": str(cert.key_file),
            "CORRIDOR_ISSUER": driver.issuer,
            "CORRIDOR_CLIENT_ID": client.client_id,
            "CORRIDOR_REDIRECT_URI": client.redirect_uri,
            "CORRIDOR_SCOPE": SCOPE,
        }
    )
    flow = NodeFlow(SCRIPT.name, env)
    try:
        yield flow, client, cert
    finally:
        flow.close()


def test_oauth4webapi_tls_client_auth_with_certificate_bound_tokens(
    driver: Driver, consent: Consent, node_flow: tuple[NodeFlow, Client, ClientCert]
) -> None:
    flow, client, cert = node_flow
    issuer = driver.issuer
    username = driver.add_user()

    # After discovery and PAR (at the alias): the front channel carries client_id and request_uri.
    authorization_url = flow.read()["authorization_url"]
    parts = urlsplit(authorization_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == issuer + "/authorize"
    query = dict(parse_qsl(parts.query))
    assert sorted(query) == ["client_id", "request_uri"]
    assert query["client_id"] == client.client_id
    assert query["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")

    callback = consent(authorization_url, username)
    assert dict(parse_qsl(urlsplit(callback).query))["iss"] == issuer
    flow.write(callback)

    result = flow.read()["result"]
    assert flow.process.wait(10) == 0, flow.diagnostics()

    assert result["issuer"] == issuer
    assert result["callback_iss"] == issuer
    assert result["request_uri"] == query["request_uri"]

    # Every back-channel call after discovery went to the published alias on the mTLS listener.
    aliases = result["mtls_endpoint_aliases"]
    assert aliases["pushed_authorization_request_endpoint"] == driver.mtls_url("/par")
    assert aliases["token_endpoint"] == driver.mtls_url("/token")
    assert aliases["userinfo_endpoint"] == driver.mtls_url("/userinfo")
    assert urlsplit(driver.mtls_url("/token")).netloc != urlsplit(issuer).netloc
    assert [tuple(call) for call in result["calls"]] == [
        ("GET", issuer + "/.well-known/openid-configuration", 200),
        ("POST", driver.mtls_url("/par"), 201),
        ("POST", driver.mtls_url("/token"), 200),
        ("GET", driver.mtls_url("/userinfo"), 200),
        ("POST", driver.mtls_url("/token"), 200),
    ]

    # A certificate-bound token (RFC 8705 3): Bearer, with the certificate's thumbprint in cnf.
    assert result["token_type"] == "Bearer"
    assert result["refresh_token_present"] is True
    _, claims = decode_jwt(result["access_token"])
    assert claims["cnf"] == {"x5t#S256": cert.thumbprint}
    assert claims["client_id"] == client.client_id
    assert claims["iss"] == issuer
    assert claims["scope"] == SCOPE

    id_claims = result["id_token_claims"]
    assert id_claims["iss"] == issuer
    assert id_claims["aud"] == client.client_id
    assert id_claims["sub"] == claims["sub"]

    assert result["userinfo"]["sub"] == claims["sub"]
    assert result["userinfo"]["preferred_username"] == username

    assert result["refreshed_token_type"] == "Bearer"
    assert result["refreshed_access_token"] != result["access_token"]
    _, refreshed = decode_jwt(result["refreshed_access_token"])
    assert refreshed["cnf"] == {"x5t#S256": cert.thumbprint}
    assert refreshed["sub"] == claims["sub"]
    assert refreshed["jti"] != claims["jti"]
