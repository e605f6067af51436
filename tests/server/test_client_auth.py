"""private_key_jwt (FAPI2 5.3.2.1-6/-8/-13, OIDC Core 9): AS10, AS12, AS14, AS19, K2-K5, K7, K9, AS1."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import OctKey, RSAKey

from corridor.core.b64 import b64url_encode
from corridor.core.jose import SigningKey
from corridor.server.clients import ClientMetadataError, build_client_metadata
from corridor.transport.tls import ensure_dev_tls
from tests.stubserver import stub_server
from tests.support import Client, Driver, ssl_context_of


def par_with_assertion(driver: Driver, client: Client, assertion: str, **extra: str) -> httpx.Response:
    response, _ = driver.par(client, extra={"client_assertion": assertion, **extra})
    return response


def assert_invalid_client(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    # RFC 6749 5.2: a challenge only for the scheme the client used in the Authorization header.
    assert "www-authenticate" not in response.headers


def test_assertion_with_issuer_audience_string_is_accepted(driver: Driver) -> None:
    client = driver.add_client()
    assert par_with_assertion(driver, client, driver.assertion(client)).status_code == 201


@pytest.mark.parametrize("aud", ["/token", "/par", "array", "array-with-token"])
def test_assertion_audience_must_be_the_issuer_as_a_string(driver: Driver, aud: str) -> None:
    """AS14 / FAPI2 5.3.2.1-8: not the token URL, not the PAR URL, not an array."""
    client = driver.add_client()
    value = {
        "/token": driver.url("/token"),
        "/par": driver.url("/par"),
        "array": [driver.issuer],
        "array-with-token": [driver.issuer, driver.url("/token")],
    }[aud]
    assert_invalid_client(par_with_assertion(driver, client, driver.assertion(client, aud=value)))


@pytest.mark.parametrize("endpoint", ["/token", "/introspect", "/revoke"])
def test_token_endpoint_audience_refused_everywhere(driver: Driver, endpoint: str) -> None:
    """AS14 applies at token, introspection and revocation too."""
    client = driver.add_client()
    form = {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": driver.assertion(client, aud=driver.url(endpoint)),
        "grant_type": "refresh_token",
        "refresh_token": "x",
        "token": "x",
    }
    assert_invalid_client(driver.http.post(driver.url(endpoint), data=form))


def test_iss_and_sub_must_be_the_client(driver: Driver) -> None:
    client, other = driver.add_client(), driver.add_client()
    assert_invalid_client(par_with_assertion(driver, client, driver.assertion(client, sub=other.client_id)))
    # iss names another client but the key is ours: the signature cannot verify.
    assert_invalid_client(
        par_with_assertion(
            driver, client, driver.assertion(client, iss=other.client_id), client_id=other.client_id
        )
    )


def test_client_id_parameter_must_match_assertion(driver: Driver) -> None:
    client, other = driver.add_client(), driver.add_client()
    response = par_with_assertion(driver, client, driver.assertion(client), client_id=other.client_id)
    assert_invalid_client(response)


def test_exp_is_required_and_checked(driver: Driver) -> None:
    client = driver.add_client()
    assert_invalid_client(par_with_assertion(driver, client, driver.assertion(client, drop=("exp",))))
    now = int(driver.now())
    assert_invalid_client(par_with_assertion(driver, client, driver.assertion(client, exp=now - 1)))
    assert_invalid_client(par_with_assertion(driver, client, driver.assertion(client, exp=now + 3600)))


def test_jti_is_required_and_single_use(driver: Driver) -> None:
    """OIDC Core 9: a replayed assertion is refused (AS14)."""
    client = driver.add_client()
    assert_invalid_client(par_with_assertion(driver, client, driver.assertion(client, drop=("jti",))))
    assertion = driver.assertion(client)
    assert par_with_assertion(driver, client, assertion).status_code == 201
    assert_invalid_client(par_with_assertion(driver, client, assertion))


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_clock_skew_window(driver: Driver, claim: str) -> None:
    """AS19 / FAPI2 5.3.2.1-13: +9 s accepted, +61 s refused."""
    client = driver.add_client()
    now = int(driver.now())
    ok = driver.assertion(client, **cast(dict[str, Any], {claim: now + 9}), exp=now + 120)
    assert par_with_assertion(driver, client, ok).status_code == 201
    late = driver.assertion(client, **cast(dict[str, Any], {claim: now + 61}), exp=now + 120)
    assert_invalid_client(par_with_assertion(driver, client, late))


@pytest.mark.parametrize("method", ["basic", "post"])
def test_client_secrets_are_refused(driver: Driver, method: str) -> None:
    """AS12 / FAPI2 5.3.2.1-6: client_secret_basic and client_secret_post."""
    client = driver.add_client()
    form = {"response_type": "code", "client_id": client.client_id}
    if method == "basic":
        creds = base64.b64encode(f"{client.client_id}:secret".encode()).decode()
        response = driver.http.post(
            driver.url("/par"), data=form, headers={"Authorization": f"Basic {creds}"}
        )
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic ")  # RFC 6749 5.2: the scheme used
        return
    response = driver.http.post(driver.url("/par"), data={**form, "client_secret": "secret"})
    assert_invalid_client(response)


def test_client_secret_jwt_hs256_is_refused(driver: Driver) -> None:
    """AS12 / K2: client_secret_jwt (HS256)."""
    client = driver.add_client()
    now = int(driver.now())
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": driver.issuer,
        "jti": "j1",
        "exp": now + 60,
    }
    token = jws.serialize_compact(
        {"alg": "HS256"}, json.dumps(claims), OctKey.import_key("s" * 32), algorithms=["HS256"]
    )
    assert_invalid_client(par_with_assertion(driver, client, token))


def test_rs256_assertion_is_refused(driver: Driver) -> None:
    """K2 / FAPI2 5.4.1-1b: RS256 even with a registered RSA key."""
    rsa = RSAKey.generate_key(2048)
    public = {**rsa.as_dict(private=False), "kid": "r1"}
    client = driver.add_client(jwks={"keys": [public]})
    now = int(driver.now())
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": driver.issuer,
        "jti": "j2",
        "exp": now + 60,
    }
    token = jws.serialize_compact(
        {"alg": "RS256", "kid": "r1"}, json.dumps(claims), rsa, algorithms=["RS256"]
    )
    assert_invalid_client(par_with_assertion(driver, client, token))


def test_alg_none_assertion_is_refused(driver: Driver) -> None:
    """K3 / FAPI2 5.4.1-1c."""
    client = driver.add_client()
    now = int(driver.now())
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": driver.issuer,
        "jti": "j3",
        "exp": now + 60,
    }
    token = b64url_encode(b'{"alg":"none"}') + "." + b64url_encode(json.dumps(claims).encode()) + "."
    assert_invalid_client(par_with_assertion(driver, client, token))


def test_assertion_signed_by_another_key(driver: Driver) -> None:
    client = driver.add_client()
    forged = driver.assertion(client, key=SigningKey.generate("ES256"))
    assert_invalid_client(par_with_assertion(driver, client, forged))


def test_assertion_of_wrong_type(driver: Driver) -> None:
    """K1 / RFC 8725 3.11: a DPoP proof is not a client assertion."""
    client = driver.add_client()
    assertion = driver.assertion(client, header={"typ": "dpop+jwt"})
    assert_invalid_client(par_with_assertion(driver, client, assertion))


@pytest.mark.parametrize("alg", ["PS256", "EdDSA"])
def test_other_fapi_algorithms_work(driver: Driver, alg: str) -> None:
    client = driver.add_client(alg=alg)
    assert par_with_assertion(driver, client, driver.assertion(client)).status_code == 201


def test_duplicate_kid_key_selection(driver: Driver) -> None:
    """K9 / FAPI2 5.4.3: an RSA and an EC key share a kid; an ES256 assertion still verifies."""
    ec = SigningKey.generate("ES256")
    rsa = SigningKey.generate("PS256")
    keys = [{**rsa.public_jwk, "kid": "same"}, {**ec.public_jwk, "kid": "same"}]
    client = driver.add_client(jwks={"keys": keys}, key=ec)
    assertion = driver.assertion(client, header={"kid": "same"})
    assert par_with_assertion(driver, client, assertion).status_code == 201


def test_registration_refuses_weak_and_private_keys() -> None:
    """K4 (RSA >= 2048), K5 (EC P-256), private material, and the auth method (AS10)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    small = rsa.generate_private_key(65537, 1024).public_key().public_numbers()  # noqa: S505 (the point)
    n = b64url_encode(small.n.to_bytes((small.n.bit_length() + 7) // 8, "big"))
    p192 = ec.generate_private_key(ec.SECP192R1()).public_key().public_numbers()
    cases = [
        {"kty": "RSA", "n": n, "e": "AQAB"},
        {
            "kty": "EC",
            "crv": "P-192",
            "x": b64url_encode(p192.x.to_bytes(24, "big")),
            "y": b64url_encode(p192.y.to_bytes(24, "big")),
        },
        SigningKey.generate("ES256").private_jwk(),
        {**SigningKey.generate("ES256").public_jwk, "alg": "RS256"},
    ]
    for jwk in cases:
        with pytest.raises(ClientMetadataError) as caught:
            build_client_metadata(redirect_uris=["https://c.example/cb"], jwks={"keys": [jwk]})
        assert caught.value.error == "invalid_client_metadata"
    with pytest.raises(ClientMetadataError):
        build_client_metadata(
            redirect_uris=["https://c.example/cb"],
            jwks={"keys": [cases[2]]},
            token_endpoint_auth_method="none",
        )
    with pytest.raises(ClientMetadataError):
        build_client_metadata(
            redirect_uris=["https://c.example/cb"],
            jwks={"keys": [cases[2]]},
            token_endpoint_auth_method="client_secret_basic",
        )


def test_registration_refuses_http_jwks_uri() -> None:
    """K7 / FAPI2 5.4.2: jwks_uri only over TLS."""
    with pytest.raises(ClientMetadataError) as caught:
        build_client_metadata(redirect_uris=["https://c.example/cb"], jwks_uri="http://c.example/jwks")
    assert caught.value.error == "invalid_client_metadata"


# -- jwks_uri over TLS (AS1: the AS checks the server certificate) -----------------------------------


@pytest.fixture
def jwks_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, SigningKey], Path]]:
    """An HTTPS server on 127.0.0.1 serving a JWKS, with a certificate from its own CA."""
    tls = ensure_dev_tls(tmp_path / "jwks-tls")
    key = SigningKey.generate("ES256")
    body = json.dumps({"keys": [key.public_jwk]}).encode()
    with stub_server(lambda path: (200, "application/json", body), (tls.cert_file, tls.key_file)) as url:
        yield url + "/jwks", {"key": key}, tls.ca_file


def test_jwks_uri_with_untrusted_certificate_fails_client_auth(
    driver: Driver, jwks_server: tuple[str, dict[str, SigningKey], Path]
) -> None:
    """AS1 / FAPI2 5.2.1: the AS fetching jwks_uri checks the certificate; a bad one -> 401."""
    url, keys, _ = jwks_server
    client = driver.add_client(jwks_uri=url, key=keys["key"])
    assert_invalid_client(par_with_assertion(driver, client, driver.assertion(client)))


def test_jwks_uri_with_trusted_certificate_works(
    driver: Driver, jwks_server: tuple[str, dict[str, SigningKey], Path]
) -> None:
    """Positive control for the test above: trust the jwks server's CA and the same flow works."""
    url, keys, ca_file = jwks_server
    server = driver.as_.server
    assert server is not None
    ssl_context_of(server.http).load_verify_locations(str(ca_file))
    client = driver.add_client(jwks_uri=url, key=keys["key"])
    assert par_with_assertion(driver, client, driver.assertion(client)).status_code == 201
