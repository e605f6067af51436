"""corridor.client with FAPI 2.0 Message Signing against a certified server we did not write:
panva's oidc-provider configured for Message Signing (tests/interop/peer.py, its Message
Signing mode: features.requestObjects and jwtResponseModes, a client registered with
require_signed_request_object and response_modes ["jwt"]). JAR at PAR (FMS 5.3.2) and JARM
(FMS 5.4.2) end to end, and proof that the provider really demanded the signed request
object: the same client's unsigned PAR is refused by it."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from corridor.client import FapiClient
from corridor.client.errors import AuthorizationResponseError, TokenEndpointError
from corridor.client.signing import RULE_JARM_MODE
from corridor.core.jose import read_header, verify_with_keys
from corridor.transport.tls import DevTLS
from tests.interop.peer import OidcProviderPeer, _Flow, running_oidc_provider
from tests.support import decode_jwt


@pytest.fixture(scope="module")
def ms_peer(tls: DevTLS) -> Iterator[OidcProviderPeer]:
    with running_oidc_provider(tls, message_signing=True) as peer:
        yield peer


@pytest.fixture
def client(ms_peer: OidcProviderPeer) -> Iterator[FapiClient]:
    assert ms_peer.ms_client_id and ms_peer.ms_client_key
    c = FapiClient(
        ms_peer.issuer,
        ms_peer.ms_client_id,
        redirect_uri=ms_peer.redirect_uri,
        key=ms_peer.ms_client_key,
        ca_file=str(ms_peer.ca_file),
        signed_request=True,
        response_mode="jwt",
    )
    yield c
    c.close()


def user(peer: OidcProviderPeer, client: FapiClient, url: str, username: str) -> str:
    """The user's part (login and consent at the provider) from the URL ``start()`` returned."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert set(query) == {"client_id", "request_uri"}
    with peer.http(follow_redirects=False) as http:
        flow = _Flow(peer, http, client.dpop_key, client_id=peer.ms_client_id, client_key=peer.ms_client_key)
        return flow.user(client.endpoint("authorization_endpoint"), query, username)


def test_jar_and_jarm_with_a_dpop_bound_token(ms_peer: OidcProviderPeer, client: FapiClient) -> None:
    url, handle = client.start(ms_peer.scope, resource=ms_peer.resource)
    assert handle.request_object is not None
    callback = user(ms_peer, client, url, "erin")
    # JARM: the response is the JWT only, nothing beside it (not even iss: FMS 5.4.1 NOTE).
    assert set(parse_qs(urlsplit(callback).query)) == {"response"}

    tokens = client.finish(callback, handle, extra={"resource": ms_peer.resource})
    assert tokens.token_type.lower() == "dpop"
    claims = decode_jwt(tokens.access_token)[1]
    assert claims["client_id"] == ms_peer.ms_client_id and claims["sub"] == "erin"
    assert claims["cnf"]["jkt"] == client.dpop_key.thumbprint()  # dpop_jkt inside the request object

    # The JARM response the client verified and kept: signed by the provider, for this client.
    jarm = tokens.authorization_response
    assert jarm is not None and jarm == client.last_authorization_response
    assert jarm == parse_qs(urlsplit(callback).query)["response"][0]
    header = read_header(jarm)
    assert header["alg"] in ms_peer.metadata["authorization_signing_alg_values_supported"]
    verified = verify_with_keys(jarm, header, ms_peer.jwks())
    assert verified["iss"] == ms_peer.issuer and verified["aud"] == ms_peer.ms_client_id
    assert verified["state"] == handle.state and verified["code"]


def test_jar_and_jarm_with_an_id_token(ms_peer: OidcProviderPeer, client: FapiClient) -> None:
    """openid: the nonce travels inside the request object and comes back in the ID token."""
    url, handle = client.start("openid")
    assert handle.nonce and decode_jwt(handle.request_object or "")[1]["nonce"] == handle.nonce
    tokens = client.finish(user(ms_peer, client, url, "frank"), handle)
    assert tokens.id_token_claims is not None
    assert tokens.id_token_claims["sub"] == "frank" and tokens.id_token_claims["nonce"] == handle.nonce
    assert tokens.authorization_response is not None


def test_the_provider_requires_the_signed_request_object(
    ms_peer: OidcProviderPeer, client: FapiClient
) -> None:
    """FMS 5.3.1-1 at the peer: the same client, same key, plain parameters at PAR: refused."""
    with pytest.raises(TokenEndpointError) as refused:
        client.start(ms_peer.scope, resource=ms_peer.resource, signed_request=False)
    assert (refused.value.status, refused.value.error) == (400, "invalid_request")
    assert refused.value.description == "Request Object must be used by this client"
    # Signed, but without JARM: refused too (response_modes ["jwt"], FMS 5.4.1).
    with pytest.raises(TokenEndpointError) as refused:
        client.start(ms_peer.scope, resource=ms_peer.resource, response_mode="query")
    assert refused.value.error == "invalid_request"
    assert refused.value.description == "requested response_mode is not allowed for this client or request"
    # And the same signed request with JARM is accepted (positive control).
    url, _ = client.start(ms_peer.scope, resource=ms_peer.resource)
    assert "request_uri=" in url


def test_a_plain_callback_is_refused_after_asking_for_jarm(
    ms_peer: OidcProviderPeer, client: FapiClient
) -> None:
    """The provider's real code, state and iss, but outside a JWT: not accepted (FMS 5.4.2)."""
    url, handle = client.start(ms_peer.scope, resource=ms_peer.resource)
    jarm = parse_qs(urlsplit(user(ms_peer, client, url, "gina")).query)["response"][0]
    verified = verify_with_keys(jarm, read_header(jarm), ms_peer.jwks())
    plain = f"{ms_peer.redirect_uri}?code={verified['code']}&state={verified['state']}&iss={ms_peer.issuer}"
    with pytest.raises(AuthorizationResponseError) as refused:
        client.finish(plain, handle)
    assert refused.value.rule == RULE_JARM_MODE
