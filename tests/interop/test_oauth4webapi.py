"""Interop: panva's oauth4webapi (a certified FAPI 2.0 client, Node) drives the whole flow
against our AS over HTTPS: discovery, PAR with PKCE S256, private_key_jwt, DPoP with the
server's nonce, the iss and state checks on the authorization response, the code exchange
with ID token validation, userinfo and a refresh. The test plays the user in between.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.interop.conftest import Consent
from tests.interop.node import NodeFlow
from tests.support import Driver, decode_jwt

HERE = Path(__file__).parent
SCRIPT = HERE / "oauth4webapi_flow.mjs"
SCOPE = "openid profile offline_access accounts"


@pytest.fixture
def node_flow(driver: Driver) -> Iterator[tuple[NodeFlow, Any]]:
    client = driver.add_client()
    env = {
        **os.environ,
        "NODE_EXTRA_CA_CERTS": str(driver.as_.tls.ca_file),
        "CORRIDOR_ISSUER": driver.issuer,
        "CORRIDOR_CLIENT_ID": client.client_id,
        "CORRIDOR_CLIENT_JWK": json.dumps(client.key.private_jwk()),
        "CORRIDOR_REDIRECT_URI": client.redirect_uri,
        "CORRIDOR_SCOPE": SCOPE,
    }
    flow = NodeFlow(SCRIPT.name, env)
    try:
        yield flow, client
    finally:
        flow.close()


def test_oauth4webapi_par_dpop_private_key_jwt_flow(
    driver: Driver, consent: Consent, node_flow: tuple[NodeFlow, Any]
) -> None:
    flow, client = node_flow
    issuer = driver.issuer
    username = driver.add_user()

    # After discovery and PAR: the front-channel request carries only client_id and request_uri.
    authorization_url = flow.read()["authorization_url"]
    parts = urlsplit(authorization_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == issuer + "/authorize"
    query = parse_qsl(parts.query)
    assert sorted(name for name, _ in query) == ["client_id", "request_uri"]
    assert dict(query)["client_id"] == client.client_id
    assert dict(query)["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")

    callback = consent(authorization_url, username)
    assert dict(parse_qsl(urlsplit(callback).query))["iss"] == issuer
    flow.write(callback)

    result = flow.read()["result"]
    assert flow.process.wait(10) == 0, flow.diagnostics()

    assert result["issuer"] == issuer
    assert result["callback_iss"] == issuer
    assert result["request_uri"] == dict(query)["request_uri"]
    # Our server demanded its DPoP nonce once (at PAR); the library kept it afterwards.
    assert result["retries"] == {"par": 1}

    assert result["token_type"] == "DPoP"
    assert result["refresh_token_present"] is True
    _, claims = decode_jwt(result["access_token"])
    assert claims["cnf"] == {"jkt": result["dpop_jkt"]}
    assert claims["client_id"] == client.client_id
    assert claims["iss"] == issuer
    assert claims["scope"] == SCOPE

    id_claims = result["id_token_claims"]
    assert id_claims["iss"] == issuer
    assert id_claims["aud"] == client.client_id
    assert id_claims["sub"] == claims["sub"]

    assert result["userinfo"]["sub"] == claims["sub"]
    assert result["userinfo"]["preferred_username"] == username

    assert result["refreshed_token_type"] == "DPoP"
    assert result["refreshed_access_token"] != result["access_token"]
    _, refreshed = decode_jwt(result["refreshed_access_token"])
    assert refreshed["cnf"] == {"jkt": result["dpop_jkt"]}
    assert refreshed["sub"] == claims["sub"]
