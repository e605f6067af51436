"""AS8 (metadata), K2/K8 (algorithms, unique kids), AS5 (HSTS), AS7 (no CORS on /authorize)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corridor.server.app import hsts_for
from corridor.transport.tls import DevTLS
from tests.support import Driver, running_as

FAPI_ALGS = {"PS256", "ES256", "EdDSA"}


@pytest.mark.parametrize(
    "path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]
)
def test_metadata_is_fapi2(driver: Driver, path: str) -> None:
    """AS8 / FAPI2 5.3.2.1-1: issuer-exact RFC 8414 / OIDD metadata with the FAPI 2.0 values."""
    response = driver.http.get(driver.url(path))
    assert response.status_code == 200
    meta = response.json()
    assert meta["issuer"] == driver.issuer
    assert meta["pushed_authorization_request_endpoint"] == driver.url("/par")
    assert meta["require_pushed_authorization_requests"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["response_types_supported"] == ["code"]
    assert set(meta["token_endpoint_auth_methods_supported"]) <= {
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    }
    for name, value in meta.items():
        if name.endswith("_signing_alg_values_supported"):
            assert set(value) <= FAPI_ALGS, name
    assert set(meta["dpop_signing_alg_values_supported"]) == FAPI_ALGS
    assert "password" not in meta["grant_types_supported"]


def test_jwks_has_unique_kids_and_public_keys_only(driver: Driver) -> None:
    """FAPI2 5.4.2 / K8: unique kid values, no private members."""
    keys = driver.http.get(driver.url("/jwks")).json()["keys"]
    assert keys
    kids = [k["kid"] for k in keys]
    assert len(kids) == len(set(kids))
    for key in keys:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
        assert key["alg"] in FAPI_ALGS


def test_hsts_on_every_endpoint(driver: Driver) -> None:
    """AS5 / FAPI2 5.2.3-1: HSTS on browser and API endpoints; without ``preload`` for this
    loopback issuer (issue 18: a loopback host cannot be on the browsers' preload lists)."""
    assert driver.issuer.startswith("https://localhost:")
    for method, path in [
        ("GET", "/authorize"),
        ("GET", "/.well-known/openid-configuration"),
        ("POST", "/token"),
    ]:
        response = driver.http.request(method, driver.url(path))
        assert response.headers.get_list("strict-transport-security") == [
            "max-age=63072000; includeSubDomains"
        ]


def test_hsts_preload_for_a_public_issuer(tmp_path: Path, tls: DevTLS) -> None:
    """issue 18: a public issuer's HSTS is preload-ready (hstspreload.org asks for max-age of a
    year or more, includeSubDomains and preload)."""
    with running_as(tmp_path, tls, issuer="https://as.example.com") as running, running.http() as http:
        for path in ("/authorize", "/.well-known/openid-configuration", "/nowhere"):
            response = http.get(running.base_url + path)
            assert response.headers.get_list("strict-transport-security") == [
                "max-age=63072000; includeSubDomains; preload"
            ]


@pytest.mark.parametrize(
    "issuer,preload",
    [
        ("https://localhost:8443", False),
        ("https://127.0.0.1", False),
        ("https://[::1]:8443", False),
        ("https://as.example.com", True),
        ("https://203.0.113.7", True),
    ],
)
def test_hsts_preload_only_for_public_issuers(issuer: str, preload: bool) -> None:
    assert hsts_for(issuer).endswith("; preload") is preload
    assert hsts_for(issuer).startswith("max-age=63072000; includeSubDomains")


def test_no_cors_on_authorization_endpoint(driver: Driver) -> None:
    """AS7 / FAPI2 5.2.3-3: no Access-Control-* headers on /authorize, preflight or not."""
    origin = {"Origin": "https://attacker.example"}
    preflight = driver.http.options(
        driver.url("/authorize"), headers={**origin, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 405
    plain = driver.http.get(driver.url("/authorize"), headers=origin)
    for response in (preflight, plain):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_unknown_paths_and_methods(driver: Driver) -> None:
    assert driver.http.get(driver.url("/nope")).status_code == 404
    response = driver.http.get(driver.url("/par"))
    assert response.status_code == 405  # AS22: PAR is POST only
    assert response.json() == {"error": "method_not_allowed"}


def test_message_signing_metadata(driver: Driver) -> None:
    """FAPI 2.0 Message Signing: JAR at PAR (RFC 9101 10.5), JARM (JARM 4.1: jwt and query.jwt),
    RFC 9701 7; what the AS signs with is its active key's alg, also after a rotation to another."""
    meta = driver.http.get(driver.url("/.well-known/openid-configuration")).json()
    assert meta["request_parameter_supported"] is True
    assert set(meta["request_object_signing_alg_values_supported"]) == FAPI_ALGS
    assert meta["require_signed_request_object"] is False
    assert meta["response_modes_supported"] == ["query", "jwt", "query.jwt"]
    signs = ("authorization", "id_token", "introspection")
    assert all(meta[f"{n}_signing_alg_values_supported"] == ["ES256"] for n in signs)
    server = driver.as_.server
    assert server is not None
    server.keys.rotate(0, "PS256")
    driver.as_.clock.advance(1)
    meta = driver.http.get(driver.url("/.well-known/openid-configuration")).json()
    assert all(meta[f"{n}_signing_alg_values_supported"] == ["PS256"] for n in signs), meta
