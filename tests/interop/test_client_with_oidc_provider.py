"""corridor.client against a certified FAPI 2.0 server we did not write: panva's
oidc-provider (FAPI 2.0 profile): private_key_jwt + DPoP with server nonces, PAR, PKCE,
iss/state checks, and the token it issues accepted by a resource request; refresh (no
rotation) and userinfo with DPoP; and, in the provider's mTLS mode (RFC 8705),
self_signed_tls_client_auth over the mtls_endpoint_aliases with certificate-bound tokens,
refresh and userinfo."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from corridor.client import FapiClient
from corridor.transport.tls import DevTLS
from tests.interop.peer import OidcProviderPeer, _Flow, running_oidc_provider
from tests.pki import ClientCert, TestPKI
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


def _user(peer: OidcProviderPeer, client: FapiClient, url: str, username: str) -> str:
    """The user's part (login and consent at the provider) from the URL ``start()`` returned."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert set(query) == {"client_id", "request_uri"}
    with peer.http(follow_redirects=False) as http:
        return _Flow(peer, http, client.dpop_key).user(
            client.endpoint("authorization_endpoint"), query, username
        )


def test_dpop_refresh_and_userinfo(oidc_provider: OidcProviderPeer) -> None:
    peer = oidc_provider
    client = FapiClient(
        peer.issuer,
        peer.client_id,
        redirect_uri=peer.redirect_uri,
        key=peer.client_key,
        ca_file=str(peer.ca_file),
    )
    # OIDC Core 11: offline_access counts only with prompt=consent. No resource: the access
    # token is the provider's own one, for userinfo.
    url, handle = client.start("openid offline_access", extra={"prompt": "consent"})
    tokens = client.finish(_user(peer, client, url, "carol"), handle)
    assert tokens.token_type.lower() == "dpop"
    assert tokens.refresh_token
    assert tokens.id_token_claims is not None and tokens.id_token_claims["sub"] == "carol"
    userinfo = client.endpoint("userinfo_endpoint")
    assert userinfo == peer.metadata["userinfo_endpoint"]
    assert "mtls_endpoint_aliases" not in peer.metadata  # the default mode has no mTLS

    with peer.http(auth=client.auth(tokens)) as http:
        response = http.get(userinfo)
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == "carol"

    fresh = client.refresh(tokens)
    assert fresh.token_type.lower() == "dpop"
    assert fresh.access_token != tokens.access_token
    # FAPI2 5.3.2.1-9: no rotation, the same refresh token stays valid.
    assert fresh.refresh_token == tokens.refresh_token
    assert client.refresh(fresh).access_token not in (tokens.access_token, fresh.access_token)
    with peer.http(auth=client.auth(fresh)) as http:
        response = http.get(userinfo)
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == "carol"
    # The token is DPoP-bound: as a bearer token (no proof) the provider refuses it.
    with peer.http() as http:
        bare = http.get(userinfo, headers={"Authorization": f"Bearer {fresh.access_token}"})
    assert bare.status_code == 401, bare.text
    assert 'error="invalid_token"' in bare.headers["www-authenticate"]


@pytest.fixture(scope="module")
def mtls_cert(pki: TestPKI) -> ClientCert:
    return pki.self_signed("CN=corridor mtls interop client")


@pytest.fixture(scope="module")
def mtls_provider(tls: DevTLS, mtls_cert: ClientCert) -> Iterator[OidcProviderPeer]:
    """oidc-provider in its mTLS mode: the self_signed_tls_client_auth client registered with
    ``mtls_cert`` (x5c), certificate-bound tokens, mtls_endpoint_aliases on a second listener."""
    with running_oidc_provider(tls, mtls_jwk=mtls_cert.jwk()) as peer:
        yield peer


def test_mtls_flow_refresh_and_userinfo(mtls_provider: OidcProviderPeer, mtls_cert: ClientCert) -> None:
    peer = mtls_provider
    assert peer.mtls_client_id and peer.mtls_origin
    aliases = peer.metadata["mtls_endpoint_aliases"]
    assert peer.metadata["tls_client_certificate_bound_access_tokens"] is True
    assert "self_signed_tls_client_auth" in peer.metadata["token_endpoint_auth_methods_supported"]
    client = FapiClient(
        peer.issuer,
        peer.mtls_client_id,
        redirect_uri=peer.redirect_uri,
        auth_method="self_signed_tls_client_auth",
        sender_constraint="mtls",
        certificate=(str(mtls_cert.cert_file), str(mtls_cert.key_file)),
        ca_file=str(peer.ca_file),
    )
    # RFC 8705 5: the client takes the aliases (only they ask for a certificate).
    for name in ("pushed_authorization_request_endpoint", "token_endpoint", "userinfo_endpoint"):
        assert client.endpoint(name) == aliases[name]
        assert aliases[name].startswith(peer.mtls_origin + "/")
    assert client.endpoint("authorization_endpoint") == peer.metadata["authorization_endpoint"]

    url, handle = client.start("openid offline_access", extra={"prompt": "consent"})
    tokens = client.finish(_user(peer, client, url, "dave"), handle)
    assert tokens.token_type.lower() == "bearer"
    assert tokens.refresh_token
    assert tokens.id_token_claims is not None and tokens.id_token_claims["sub"] == "dave"

    # A JWT access token for the resource (resource indicator at the token request) carries the
    # binding itself: cnf.x5t#S256 is the thumbprint of the certificate on the connection.
    url, handle = client.start(peer.scope, resource=peer.resource)
    for_api = client.finish(_user(peer, client, url, "dave"), handle, extra={"resource": peer.resource})
    assert for_api.token_type.lower() == "bearer"
    claims = decode_jwt(for_api.access_token)[1]
    assert claims["cnf"] == {"x5t#S256": mtls_cert.thumbprint}
    assert claims["aud"] == peer.resource and claims["sub"] == "dave"
    assert claims["client_id"] == peer.mtls_client_id

    fresh = client.refresh(tokens)
    assert fresh.token_type.lower() == "bearer"
    assert fresh.access_token != tokens.access_token
    assert fresh.refresh_token == tokens.refresh_token  # FAPI2 5.3.2.1-9: no rotation

    userinfo = client.endpoint("userinfo_endpoint")
    with httpx.Client(
        verify=mtls_cert.ssl_context(peer.ca_file), auth=client.auth(fresh), timeout=10
    ) as http:
        response = http.get(userinfo)
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == "dave"

    # The binding holds: without the certificate, or on the issuer's listener (which never asks
    # for one), the provider refuses the same token.
    with peer.http(auth=client.auth(fresh)) as http:
        for response in (http.get(userinfo), http.get(peer.metadata["userinfo_endpoint"])):
            assert response.status_code == 401, response.text
            assert 'error="invalid_token"' in response.headers["www-authenticate"]
    # The issuer's own token endpoint never asks for a certificate: no mTLS client authentication
    # there, even with the certificate at hand; the aliases are what make the flow work.
    with httpx.Client(verify=mtls_cert.ssl_context(peer.ca_file), timeout=10) as http:
        response = http.post(
            peer.metadata["token_endpoint"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": str(tokens.refresh_token),
                "client_id": peer.mtls_client_id,
            },
        )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client", response.text


def test_refresh_keeps_the_token_for_the_same_api(oidc_provider: OidcProviderPeer) -> None:
    """RFC 8707 2.2: the resource asked for at PAR is sent again at the token endpoint and on
    refresh, so a refreshed token is still for the API (not the provider's userinfo)."""
    peer = oidc_provider
    client = FapiClient(
        peer.issuer,
        peer.client_id,
        redirect_uri=peer.redirect_uri,
        key=peer.client_key,
        ca_file=str(peer.ca_file),
    )
    url, handle = client.start(
        f"openid offline_access {peer.scope}", resource=peer.resource, extra={"prompt": "consent"}
    )
    tokens = client.finish(_user(peer, client, url, "dave"), handle)
    assert decode_jwt(tokens.access_token)[1]["aud"] == peer.resource
    fresh = client.refresh(tokens)
    claims = decode_jwt(fresh.access_token)[1]
    assert claims["aud"] == peer.resource and claims["cnf"]["jkt"] == client.dpop_key.thumbprint()
