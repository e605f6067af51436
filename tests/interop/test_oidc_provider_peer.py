"""Self-test of the oidc-provider peer (tests/interop/peer.py): panva's certified FAPI 2.0
server, in its FAPI 2.0 profile, issues a DPoP-bound JWT access token (RFC 9068) for the
resource that our flow asked for, signed with a key from its published JWKS."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from corridor.core.dpop import make_proof, verify_proof
from corridor.core.jose import JoseFailure, SigningKey, read_header, verify_with_keys
from corridor.core.pkce import new_verifier, s256_challenge
from corridor.core.randomness import new_secret_token
from corridor.transport.tls import DevTLS
from tests.interop.peer import JWT_BEARER, RESOURCE, SCOPE, OidcProviderPeer, _Flow, running_oidc_provider
from tests.support import decode_jwt


def test_metadata_shows_the_fapi2_profile(oidc_provider: OidcProviderPeer) -> None:
    metadata = oidc_provider.metadata
    assert metadata["issuer"] == oidc_provider.issuer
    assert oidc_provider.issuer.startswith("https://localhost:")
    assert metadata["require_pushed_authorization_requests"] is True
    assert metadata["pushed_authorization_request_endpoint"] == oidc_provider.issuer + "/request"
    assert metadata["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(metadata["token_endpoint_auth_signing_alg_values_supported"]) <= {"ES256", "PS256", "EdDSA"}
    assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert oidc_provider.jwks_uri == oidc_provider.issuer + "/jwks"


def test_the_fapi2_rules_are_enforced(oidc_provider: OidcProviderPeer) -> None:
    with oidc_provider.http(follow_redirects=False) as http:
        # No front-channel request without PAR.
        response = http.get(
            oidc_provider.metadata["authorization_endpoint"],
            params={
                "client_id": oidc_provider.client_id,
                "response_type": "code",
                "redirect_uri": oidc_provider.redirect_uri,
                "scope": SCOPE,
                "code_challenge": s256_challenge(new_verifier()),
                "code_challenge_method": "S256",
            },
        )
        assert response.status_code == 303
        error = parse_qs(urlsplit(response.headers["location"]).query)
        assert error["error"] == ["invalid_request"]
        assert error["error_description"] == ["Pushed Authorization Request must be used"]

        # private_key_jwt: aud must be the issuer identifier, not the endpoint's URL.
        now = int(time.time())
        claims = {"iss": oidc_provider.client_id, "sub": oidc_provider.client_id, "iat": now, "exp": now + 60}
        par = oidc_provider.metadata["pushed_authorization_request_endpoint"]
        form = {
            "client_id": oidc_provider.client_id,
            "response_type": "code",
            "redirect_uri": oidc_provider.redirect_uri,
            "scope": SCOPE,
            "resource": oidc_provider.resource,
            "client_assertion_type": JWT_BEARER,
        }
        for aud, status in ((par, 401), (oidc_provider.issuer, 400)):
            assertion = oidc_provider.client_key.sign(
                {**claims, "aud": aud, "jti": new_secret_token()}, "JWT"
            )
            # Without a PKCE challenge: refused once the client is authenticated.
            response = http.post(par, data={**form, "client_assertion": assertion})
            assert response.status_code == status, response.text
        assert response.json()["error"] == "invalid_request"
        assert "PKCE" in response.json()["error_description"]


def test_a_dpop_bound_jwt_access_token_from_the_certified_peer(oidc_provider: OidcProviderPeer) -> None:
    token, dpop_key = oidc_provider.dpop_token()
    # The provider demanded its DPoP nonce at PAR; the flow kept it for the token request.
    assert oidc_provider.last_retries == {"par": 1}

    header = read_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["alg"] in {"ES256", "PS256", "EdDSA"}
    keys = oidc_provider.jwks()
    assert all("d" not in key for key in keys)
    claims = verify_with_keys(token, header, keys)
    assert claims == decode_jwt(token)[1]

    assert claims["iss"] == oidc_provider.issuer
    assert claims["aud"] == RESOURCE == oidc_provider.resource
    assert claims["cnf"] == {"jkt": dpop_key.thumbprint()}
    assert claims["scope"] == SCOPE
    assert claims["client_id"] == oidc_provider.client_id
    assert claims["sub"] == "alice"
    assert 0 < claims["exp"] - claims["iat"] <= 600
    assert isinstance(claims["jti"], str)

    # A test can prove possession of the returned key for this token, as an RS would check it.
    url = "https://rs.example.org/api/accounts"
    proof = make_proof(dpop_key, "GET", url, access_token=token)
    checked = verify_proof(
        [proof], method="GET", url=url, now=claims["iat"] + 1, max_future=5, max_past=60, access_token=token
    )
    assert checked.jkt == claims["cnf"]["jkt"]

    # A tampered token fails against the same keys.
    head, body, signature = token.split(".")
    with pytest.raises(JoseFailure):
        verify_with_keys(f"{head}.{body}.{signature[:-4]}AAAA", header, keys)


def test_each_token_is_bound_to_its_own_key(oidc_provider: OidcProviderPeer) -> None:
    mine = SigningKey.generate("EdDSA")
    token, key = oidc_provider.dpop_token(mine, username="bob")
    assert key is mine
    claims = verify_with_keys(token, read_header(token), oidc_provider.jwks())
    assert claims["cnf"] == {"jkt": mine.thumbprint()}
    assert claims["sub"] == "bob"


def test_ps256_access_tokens(tls: DevTLS) -> None:
    with running_oidc_provider(tls, access_token_alg="PS256") as peer:
        token, key = peer.dpop_token()
        header = read_header(token)
        assert (header["typ"], header["alg"]) == ("at+jwt", "PS256")
        claims = verify_with_keys(token, header, peer.jwks())
        assert claims["cnf"] == {"jkt": key.thumbprint()}
        assert claims["aud"] == peer.resource


def _request_object(peer: OidcProviderPeer, **changes: object) -> str:
    """A FAPI 2.0 Message Signing request object of the MS client (FMS 5.3.2): all the
    parameters inside, aud = the issuer, nbf = now, exp = nbf + 5 min; ``changes`` override
    (None drops a claim)."""
    assert peer.ms_client_id is not None and peer.ms_client_key is not None
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": peer.ms_client_id,
        "aud": peer.issuer,
        "client_id": peer.ms_client_id,
        "jti": new_secret_token(),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "response_type": "code",
        "response_mode": "jwt",
        "redirect_uri": peer.redirect_uri,
        "scope": SCOPE,
        "resource": peer.resource,
        "state": new_secret_token(),
        "code_challenge": s256_challenge(new_verifier()),
        "code_challenge_method": "S256",
    }
    claims.update(changes)
    return peer.ms_client_key.sign({k: v for k, v in claims.items() if v is not None}, "oauth-authz-req+jwt")


def test_the_message_signing_mode(tls: DevTLS) -> None:
    """FMS 5.3.1-1 / 5.4.1: the MS client must push a signed request object and gets JARM;
    the first client of the same provider keeps its plain PAR."""
    with running_oidc_provider(tls, message_signing=True) as peer, peer.http(follow_redirects=False) as http:
        metadata = peer.metadata
        assert metadata["request_parameter_supported"] is True
        assert "jwt" in metadata["response_modes_supported"]
        assert set(metadata["authorization_signing_alg_values_supported"]) <= {"ES256", "PS256", "EdDSA"}
        assert set(metadata["request_object_signing_alg_values_supported"]) <= {"ES256", "PS256", "EdDSA"}
        assert metadata["introspection_endpoint"] == peer.issuer + "/token/introspection"
        assert peer.ms_client_id and peer.ms_client_id != peer.client_id
        flow = _Flow(
            peer,
            http,
            SigningKey.generate("ES256"),
            client_id=peer.ms_client_id,
            client_key=peer.ms_client_key,
        )
        par = metadata["pushed_authorization_request_endpoint"]
        plain = {
            "client_id": peer.ms_client_id,
            "response_type": "code",
            "response_mode": "jwt",
            "redirect_uri": peer.redirect_uri,
            "scope": SCOPE,
            "code_challenge": s256_challenge(new_verifier()),
            "code_challenge_method": "S256",
        }
        refused = flow.post_with_dpop("par", par, plain)
        assert refused.status_code == 400, refused.text
        assert refused.json() == {
            "error": "invalid_request",
            "error_description": "Request Object must be used by this client",
        }
        for changes, description in (
            ({"nbf": None}, "Request Object is missing the 'nbf' claim"),
            ({"exp": int(time.time()) + 3700}, "Request Object 'exp' claim too far from 'nbf' claim"),
            ({"response_mode": None}, "requested response_mode is not allowed for this client or request"),
        ):
            response = flow.post_with_dpop(
                "par", par, {"client_id": peer.ms_client_id, "request": _request_object(peer, **changes)}
            )
            assert response.status_code == 400, (changes, response.text)
            assert response.json()["error_description"] == description, response.text

        state = new_secret_token()
        pushed = flow.post_with_dpop(
            "par", par, {"client_id": peer.ms_client_id, "request": _request_object(peer, state=state)}
        )
        assert pushed.status_code == 201, pushed.text
        callback = flow.user(
            metadata["authorization_endpoint"],
            {"client_id": peer.ms_client_id, "request_uri": pushed.json()["request_uri"]},
            "dave",
        )
        query = parse_qs(urlsplit(callback).query)
        assert set(query) == {"response"}  # JARM: nothing outside the JWT (not even iss)
        jarm = query["response"][0]
        header = read_header(jarm)
        assert header["alg"] == "ES256" and header["kid"]
        claims = verify_with_keys(jarm, header, peer.jwks())
        assert claims["iss"] == peer.issuer and claims["aud"] == peer.ms_client_id
        assert claims["state"] == state and claims["code"]
        assert 0 < claims["exp"] - time.time() <= 120 + 5

        # The first client of this provider is as in the default mode.
        token, _ = peer.dpop_token()
        assert decode_jwt(token)[1]["client_id"] == peer.client_id
