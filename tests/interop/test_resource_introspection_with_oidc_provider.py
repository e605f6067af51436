"""corridor.resource in introspection mode with signed answers (RFC 9701, FAPI 2.0 Message
Signing 5.5.2) against a certified FAPI 2.0 server we did not write: panva's oidc-provider, in
its Message Signing mode (features.introspection and jwtIntrospection), issuing opaque
DPoP-bound access tokens (it refuses to introspect its own JWT access tokens). The token comes
from corridor.client; our RS introspects it as the provider's resource-server client
(private_key_jwt, introspection_signed_response_alg ES256) and reads it from the verified JWT.

What the provider does (oidc-provider 9.13.3, actions/introspection.js): with jwtIntrospection
on, every client has an introspection_signed_response_alg (the default, RS256, is not enabled
here, so each names ES256), and the answer is a JWT exactly when the Accept header asks for one;
it never answers JSON to ``Accept: application/token-introspection+jwt``. The downgrade is
therefore shown against the same provider with jwtIntrospection off: it answers JSON, and our RS
with ``signed=True`` refuses the token (401 invalid_token, FAPI2 MS 5.5.2); ``signed=False``
accepts the same kind of answer (positive control)."""

from __future__ import annotations

import hashlib
import json
import ssl
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from corridor.client import FapiClient
from corridor.core.dpop import make_proof
from corridor.core.jose import SigningKey, read_header, verify_with_keys
from corridor.core.randomness import new_secret_token, token_hash
from corridor.core.rules import Rule
from corridor.resource.guard import ResourceSettings
from corridor.resource.verifiers import INTROSPECTION_JWT, Introspection
from corridor.transport.tls import DevTLS
from tests.interop.peer import JWT_BEARER, OidcProviderPeer, _Flow, running_oidc_provider
from tests.pki import TestPKI
from tests.resource.api import PUBLIC_URL, RunningRS, running_api


@pytest.fixture(scope="module")
def peer(tls: DevTLS) -> Iterator[OidcProviderPeer]:
    with running_oidc_provider(tls, message_signing=True, access_token_format="opaque") as running:
        yield running


@pytest.fixture(scope="module")
def json_peer(tls: DevTLS) -> Iterator[OidcProviderPeer]:
    """The same provider without RFC 9701: its introspection answers JSON only."""
    with running_oidc_provider(
        tls, message_signing=True, access_token_format="opaque", jwt_introspection=False
    ) as running:
        yield running


def settings(peer: OidcProviderPeer, tls: DevTLS, *, signed: bool) -> ResourceSettings:
    assert peer.rs_client_id and peer.rs_client_key
    return ResourceSettings(
        resource=peer.resource,
        authorization_servers=(peer.issuer,),
        public_url=PUBLIC_URL,
        ca_file=str(tls.ca_file),
        introspection=Introspection(client_id=peer.rs_client_id, key=peer.rs_client_key, signed=signed),
    )


@pytest.fixture(scope="module")
def signed_api(peer: OidcProviderPeer, tls: DevTLS, pki: TestPKI) -> Iterator[RunningRS]:
    with running_api(settings(peer, tls, signed=True), tls, pki.ca_file) as running:
        yield running


def token_from(peer: OidcProviderPeer, username: str) -> tuple[str, SigningKey]:
    """corridor.client (the provider's first client: PAR, PKCE, DPoP) gets an opaque DPoP-bound
    access token for the resource; the test plays the user at the provider's pages."""
    client = FapiClient(
        peer.issuer,
        peer.client_id,
        redirect_uri=peer.redirect_uri,
        key=peer.client_key,
        ca_file=str(peer.ca_file),
    )
    try:
        url, handle = client.start(peer.scope, resource=peer.resource)
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        with peer.http(follow_redirects=False) as http:
            callback = _Flow(peer, http, client.dpop_key).user(
                client.endpoint("authorization_endpoint"), query, username
            )
        tokens = client.finish(callback, handle, extra={"resource": peer.resource})
        assert tokens.token_type.lower() == "dpop"
        assert tokens.access_token.count(".") == 0  # opaque, not an RFC 9068 JWT
        return tokens.access_token, client.dpop_key
    finally:
        client.close()


def call(api: RunningRS, token: str, key: SigningKey) -> httpx.Response:
    """GET /accounts with the token and a DPoP proof carrying the RS's current nonce."""
    proof = make_proof(
        key, "GET", PUBLIC_URL + "/accounts", nonce=api.guard.nonces.current(), access_token=token
    )
    context = ssl.create_default_context(cafile=api.guard.settings.ca_file)
    with httpx.Client(verify=context, timeout=20) as http:
        return http.get(api.url + "/accounts", headers={"Authorization": f"DPoP {token}", "DPoP": proof})


def introspect(peer: OidcProviderPeer, token: str, accept: str) -> httpx.Response:
    """The provider's introspection endpoint, called directly as the resource server's client."""
    assert peer.rs_client_id and peer.rs_client_key
    now = int(time.time())
    assertion = peer.rs_client_key.sign(
        {
            "iss": peer.rs_client_id,
            "sub": peer.rs_client_id,
            "aud": peer.issuer,
            "jti": new_secret_token(),
            "iat": now,
            "exp": now + 60,
        },
        "JWT",
    )
    with peer.http() as http:
        return http.post(
            peer.metadata["introspection_endpoint"],
            data={"token": token, "client_assertion_type": JWT_BEARER, "client_assertion": assertion},
            headers={"Accept": accept},
        )


def test_signed_introspection_of_an_oidc_provider_token(
    peer: OidcProviderPeer, signed_api: RunningRS
) -> None:
    """FMS 5.5.2 / RFC 9701 5: the RS asks the provider for a JWT, verifies it, and accepts the
    token from its token_introspection; the evidence names the provider's signed answer."""
    token, key = token_from(peer, "hana")
    response = call(signed_api, token, key)
    assert response.status_code == 200, response.text
    assert (response.json()["sub"], response.json()["client"]) == ("hana", peer.client_id)
    provider_kids = {k["kid"] for k in peer.jwks()}
    named = json.loads(signed_api.guard.decisions[-1]["detail"])["signed_introspection"]
    assert set(named) == {"sha256", "kid", "alg"}
    assert named["alg"] == "ES256" and named["kid"] in provider_kids

    # The accepted token carries the provider's JWS: it verifies with the provider's JWKS.
    access = signed_api.guard.verify_token(token)
    assert access.subject == "hana" and access.client_id == peer.client_id
    assert access.issuer == peer.issuer and access.thumbprint == key.thumbprint()
    signed = access.signed_introspection
    assert signed is not None and set(signed) == {"sha256", "kid", "alg", "jws"}
    assert signed["sha256"] == hashlib.sha256(signed["jws"].encode()).hexdigest()
    header = read_header(signed["jws"])
    assert header["typ"] == "token-introspection+jwt"
    assert (header["alg"], header["kid"]) == ("ES256", signed["kid"]) and signed["kid"] in provider_kids
    claims = verify_with_keys(signed["jws"], header, peer.jwks())
    assert claims["iss"] == peer.issuer and claims["aud"] == peer.rs_client_id
    answer = claims["token_introspection"]
    assert answer["active"] is True and answer["aud"] == peer.resource
    assert answer["client_id"] == peer.client_id and answer["sub"] == "hana"
    assert answer["cnf"] == {"jkt": key.thumbprint()} and answer["token_type"] == "DPoP"
    # No jti in the answer (the opaque token is its own identifier, RFC 7662 2.2 makes it
    # optional): the RS names the token by its hash, in the token and the decision record.
    assert "jti" not in answer and access.jti == token_hash(token)
    assert signed_api.guard.decisions[-1]["token_jti"] == token_hash(token)


def test_the_provider_signs_exactly_when_asked(peer: OidcProviderPeer) -> None:
    """oidc-provider answers by the Accept header: a JWT for ours, JSON for application/json
    (so the RS's Accept is what makes the answer signed; no client setting turns it off)."""
    token, _ = token_from(peer, "ivan")
    as_jwt = introspect(peer, token, INTROSPECTION_JWT)
    assert as_jwt.status_code == 200
    assert as_jwt.headers["content-type"] == INTROSPECTION_JWT + "; charset=utf-8"
    plain = introspect(peer, token, "application/json")
    assert plain.status_code == 200
    assert plain.headers["content-type"] == "application/json; charset=utf-8"
    assert plain.json()["active"] is True and plain.json()["client_id"] == peer.client_id


def test_an_inactive_token_in_a_signed_answer_is_refused(
    peer: OidcProviderPeer, signed_api: RunningRS
) -> None:
    """RFC 7662 2.2 through RFC 9701: the provider signs active false for a token it never
    issued; the RS refuses it (401 invalid_token) and accepts a real one (positive control)."""
    unknown = new_secret_token()
    signed = introspect(peer, unknown, INTROSPECTION_JWT)
    assert signed.headers["content-type"] == INTROSPECTION_JWT + "; charset=utf-8"
    claims = verify_with_keys(signed.text, read_header(signed.text), peer.jwks())
    assert claims["token_introspection"] == {"active": False} and claims["aud"] == peer.rs_client_id
    response = call(signed_api, unknown, SigningKey.generate("ES256"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith(
        'DPoP error="invalid_token", error_description="the access token is not active"'
    )
    assert signed_api.guard.decisions[-1]["rule"] == Rule.RFC_7662_2_2
    token, key = token_from(peer, "judy")
    assert call(signed_api, token, key).status_code == 200


def test_a_json_answer_is_refused_when_signed_is_required(
    json_peer: OidcProviderPeer, tls: DevTLS, pki: TestPKI
) -> None:
    """FMS 5.5.2: an AS that answers plain JSON (oidc-provider without jwtIntrospection) leaves
    the token unverified for the RS with signed=True; signed=False accepts it (positive control)."""
    token, key = token_from(json_peer, "kim")
    plain = introspect(json_peer, token, INTROSPECTION_JWT)
    assert plain.status_code == 200
    assert plain.headers["content-type"] == "application/json; charset=utf-8"
    with running_api(settings(json_peer, tls, signed=True), tls, pki.ca_file) as api:
        response = call(api, token, key)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith(
            'DPoP error="invalid_token", error_description="the introspection response is not signed"'
        )
        refusal = api.guard.decisions[-1]
        assert (refusal["error"], refusal["rule"]) == ("invalid_token", Rule.FAPI2_MS_5_5_2)
    with running_api(settings(json_peer, tls, signed=False), tls, pki.ca_file) as api:
        response = call(api, token, key)
        assert response.status_code == 200, response.text
        assert response.json()["sub"] == "kim"
        assert "signed_introspection" not in json.loads(api.guard.decisions[-1]["detail"])
