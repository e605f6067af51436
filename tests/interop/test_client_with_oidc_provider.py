"""corridor.client against a certified FAPI 2.0 server we did not write: panva's
oidc-provider (FAPI 2.0 profile): private_key_jwt + DPoP with server nonces, PAR, PKCE,
iss/state checks, and the token it issues accepted by a resource request."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from corridor.client import FapiClient
from tests.interop.peer import OidcProviderPeer, _Flow
from tests.support import decode_jwt


def test_private_key_jwt_and_dpop_with_nonces(oidc_provider: OidcProviderPeer) -> None:
    peer = oidc_provider
    client = FapiClient(
        peer.issuer,
        peer.client_id,
        redirect_uri=peer.redirect_uri,
        key=peer.client_key,
        ca_file=str(peer.ca_file),
    )
    url, handle = client.start(peer.scope, resource=peer.resource)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert set(query) == {"client_id", "request_uri"}
    with peer.http(follow_redirects=False) as http:
        callback = _Flow(peer, http, client.dpop_key).user(
            client.endpoint("authorization_endpoint"), query, "bob"
        )
    tokens = client.finish(callback, handle, extra={"resource": peer.resource})
    assert tokens.token_type.lower() == "dpop"
    claims = decode_jwt(tokens.access_token)[1]
    assert claims["cnf"]["jkt"] == client.dpop_key.thumbprint() and claims["sub"] == "bob"
    assert claims["aud"] == peer.resource
    assert client.nonces  # the provider demanded a nonce, and the client followed it
    assert client.metadata_evidence["sha256"]
