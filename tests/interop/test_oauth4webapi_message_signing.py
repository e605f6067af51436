"""Interop, FAPI 2.0 Message Signing: panva's oauth4webapi (a certified FAPI 2.0 client) pushes a
signed request object (JAR, RFC 9101 at PAR), validates our signed authorization response
(JARM), redeems the code, and its resource-server client asks for and validates a signed
introspection response (RFC 9701). The test plays the user in between."""

from __future__ import annotations

import hashlib
import json
import os
from urllib.parse import parse_qsl, urlsplit

from corridor.audit.events import Event
from tests.interop.conftest import Consent
from tests.interop.node import NodeFlow
from tests.support import Driver, decode_jwt

SCRIPT = "oauth4webapi_message_signing.mjs"
SCOPE = "openid accounts"
RS = "https://rs-ms.example.org/api"


def test_oauth4webapi_jar_jarm_and_jwt_introspection(driver: Driver, consent: Consent) -> None:
    client = driver.add_client(require_signed_request_object=True, response_modes=("jwt",))
    rs_client = driver.add_client()
    driver.as_.store.clients.add_resource_server(RS, "MS RS", [], rs_client.client_id, 0.0)
    env = {
        **os.environ,
        "NODE_EXTRA_CA_CERTS": str(driver.as_.tls.ca_file),
        "CORRIDOR_ISSUER": driver.issuer,
        "CORRIDOR_CLIENT_ID": client.client_id,
        "CORRIDOR_CLIENT_JWK": json.dumps(client.key.private_jwk()),
        "CORRIDOR_REDIRECT_URI": client.redirect_uri,
        "CORRIDOR_SCOPE": SCOPE,
        "CORRIDOR_RESOURCE": RS,
        "CORRIDOR_RS_CLIENT_ID": rs_client.client_id,
        "CORRIDOR_RS_CLIENT_JWK": json.dumps(rs_client.key.private_jwk()),
    }
    flow = NodeFlow(SCRIPT, env)
    try:
        authorization_url = flow.read()["authorization_url"]
        callback = consent(authorization_url, driver.add_user())
        # JARM: the response is one JWT, and nothing else travels in the query (no outside iss).
        query = dict(parse_qsl(urlsplit(callback).query))
        assert set(query) == {"response"}, query
        flow.write(callback)
        result = flow.read()["result"]
        assert flow.process.wait(10) == 0, flow.diagnostics()
    finally:
        flow.close()

    header, claims = decode_jwt(result["request_object"])
    assert header["typ"] == "oauth-authz-req+jwt" and claims["iss"] == client.client_id
    assert claims["aud"] == driver.issuer and claims["response_mode"] == "jwt"
    assert "code" in result["jarm_parameters"] and result["jarm_parameters"]["iss"] == driver.issuer
    assert result["token_type"] == "DPoP"
    _, access = decode_jwt(result["access_token"])
    assert access["aud"] == RS and access["cnf"] == {"jkt": result["dpop_jkt"]}

    assert result["introspection_content_type"] == "application/token-introspection+jwt"
    assert result["introspection"]["active"] is True
    assert result["introspection"]["client_id"] == client.client_id

    # The evidence: the PAR record names the request object oauth4webapi signed, kept verbatim.
    sha256 = hashlib.sha256(result["request_object"].encode()).hexdigest()
    records = [
        r
        for r in driver.as_.store.audit.records()
        if r["event"] == Event.PAR and r["client_id"] == client.client_id
    ]
    assert json.loads(records[-1]["detail"])["request_object"]["sha256"] == sha256
    kept = driver.as_.store.messages.get(sha256)
    assert kept is not None and kept["jws"] == result["request_object"]
