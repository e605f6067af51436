"""DPoP at the authorization server, RFC 9449 4.3 and 8: rows D1-D12, AS16, AS19."""

from __future__ import annotations

import json
from typing import Any, cast

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from corridor.core.b64 import b64url_encode
from corridor.core.dpop import make_proof
from corridor.core.jose import SigningKey
from tests.support import Client, Driver, RunningAS


class Ready(Driver):
    """The type of the ``ready`` fixture: a driver carrying the module's client and refresh token."""

    _client: Client
    _rt: str


def token_call(driver: Ready, headers: dict[str, str] | list[tuple[str, str]]) -> httpx.Response:
    """A refresh request (cheap to repeat) with the given DPoP header(s)."""
    client = driver._client
    form = {**driver.client_auth(client), "grant_type": "refresh_token", "refresh_token": driver._rt}
    return driver.http.post(driver.url("/token"), data=form, headers=headers)


@pytest.fixture(scope="module")
def grant(as_server: RunningAS) -> tuple[Client, str]:
    """One authorized client for the module; refresh tokens are not rotated, so it can be reused."""
    setup = Driver(as_server)
    client = setup.add_client()
    _, tokens = setup.full_flow(client)
    return client, tokens["refresh_token"]


@pytest.fixture
def ready(driver: Driver, grant: tuple[Client, str]) -> Ready:
    ready = cast(Ready, driver)
    ready._client, ready._rt = grant
    return ready


def raw_proof(header: dict[str, Any], claims: dict[str, Any], key: Any, alg: str) -> str:
    return jws.serialize_compact(header, json.dumps(claims), key, algorithms=[alg])


def claims_for(driver: Driver, **over: Any) -> dict[str, Any]:
    claims = {
        "jti": b64url_encode(__import__("os").urandom(16)),
        "htm": "POST",
        "htu": driver.url("/token"),
        "iat": int(driver.now()),
        "nonce": driver.fresh_nonce(),
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def assert_dpop_error(response: httpx.Response, error: str = "invalid_dpop_proof") -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error


def test_valid_proof_works(ready: Ready) -> None:
    proof = ready.proof(ready._client, "POST", ready.url("/token"))
    assert token_call(ready, {"DPoP": proof}).status_code == 200


def test_two_dpop_headers(ready: Ready) -> None:
    """D1."""
    p1 = ready.proof(ready._client, "POST", ready.url("/token"))
    p2 = ready.proof(ready._client, "POST", ready.url("/token"))
    assert_dpop_error(token_call(ready, [("DPoP", p1), ("DPoP", p2)]))


@pytest.mark.parametrize("value", ["garbage", "a.b", "a.b.c.d.e", "eyJhbGciOiJFUzI1NiJ9..."])
def test_malformed_proof(ready: Ready, value: str) -> None:
    """D2: not a compact JWS (a JWE has five parts)."""
    assert_dpop_error(token_call(ready, {"DPoP": value}))


def test_wrong_typ(ready: Ready) -> None:
    """D3: typ must be dpop+jwt."""
    key = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "typ": "JWT", "jwk": key.as_dict(private=False)}
    assert_dpop_error(token_call(ready, {"DPoP": raw_proof(header, claims_for(ready), key, "ES256")}))


def test_alg_none(ready: Ready) -> None:
    """D4."""
    key = ECKey.generate_key("P-256")
    header = {"alg": "none", "typ": "dpop+jwt", "jwk": key.as_dict(private=False)}
    token = (
        b64url_encode(json.dumps(header).encode())
        + "."
        + b64url_encode(json.dumps(claims_for(ready)).encode())
        + "."
    )
    assert_dpop_error(token_call(ready, {"DPoP": token}))


@pytest.mark.parametrize("alg,bits", [("RS256", 2048), ("ES384", 384)])
def test_non_fapi_alg(ready: Ready, alg: str, bits: int) -> None:
    """D4 / K2: RS256 and ES384 are refused."""
    key = RSAKey.generate_key(bits) if alg == "RS256" else ECKey.generate_key("P-384")
    header = {"alg": alg, "typ": "dpop+jwt", "jwk": key.as_dict(private=False)}
    assert_dpop_error(token_call(ready, {"DPoP": raw_proof(header, claims_for(ready), key, alg)}))


def test_private_key_in_jwk(ready: Ready) -> None:
    """D5."""
    key = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "typ": "dpop+jwt", "jwk": key.as_dict(private=True)}
    assert_dpop_error(token_call(ready, {"DPoP": raw_proof(header, claims_for(ready), key, "ES256")}))


def test_missing_jwk(ready: Ready) -> None:
    key = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "typ": "dpop+jwt"}
    assert_dpop_error(token_call(ready, {"DPoP": raw_proof(header, claims_for(ready), key, "ES256")}))


def test_bad_signature(ready: Ready) -> None:
    """D6: one flipped byte of the signature."""
    proof = ready.proof(ready._client, "POST", ready.url("/token"))
    head, body, sig = proof.split(".")
    flipped = "B" if sig[5] != "B" else "C"
    assert_dpop_error(token_call(ready, {"DPoP": f"{head}.{body}.{sig[:5]}{flipped}{sig[6:]}"}))


def test_jwk_of_another_key(ready: Ready) -> None:
    key, other = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    header = {"alg": "ES256", "typ": "dpop+jwt", "jwk": other.as_dict(private=False)}
    assert_dpop_error(token_call(ready, {"DPoP": raw_proof(header, claims_for(ready), key, "ES256")}))


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_required_claims(ready: Ready, claim: str) -> None:
    """D7."""
    key = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "typ": "dpop+jwt", "jwk": key.as_dict(private=False)}
    claims = claims_for(ready, **{claim: None})
    assert_dpop_error(token_call(ready, {"DPoP": raw_proof(header, claims, key, "ES256")}))


def test_wrong_htm(ready: Ready) -> None:
    """D8."""
    proof = ready.proof(ready._client, "GET", ready.url("/token"))
    assert_dpop_error(token_call(ready, {"DPoP": proof}))


@pytest.mark.parametrize("htu", ["/par", "https://evil.example/token", "http://localhost:{port}/token"])
def test_wrong_htu(ready: Ready, htu: str) -> None:
    """D9: another endpoint, another host, another scheme."""
    url = ready.url(htu) if htu.startswith("/") else htu.format(port=ready.as_.port)
    proof = ready.proof(ready._client, "POST", url)
    assert_dpop_error(token_call(ready, {"DPoP": proof}))


@pytest.mark.parametrize("variant", ["query", "fragment", "upper"])
def test_htu_normalization_accepted(ready: Ready, variant: str) -> None:
    """D9: query and fragment are ignored; scheme and host compare case-insensitively."""
    url = {
        "query": ready.url("/token?x=1"),
        "fragment": ready.url("/token#frag"),
        "upper": ready.url("/token").replace("https://localhost", "HTTPS://LOCALHOST"),
    }[variant]
    proof = ready.proof(ready._client, "POST", url)
    assert token_call(ready, {"DPoP": proof}).status_code == 200


@pytest.mark.parametrize("offset,ok", [(-3600, False), (61, False), (9, True), (-30, True)])
def test_iat_window(ready: Ready, offset: int, ok: bool) -> None:
    """D10 / AS19: +9 s accepted, +61 s and -1 h refused."""
    proof = ready.proof(ready._client, "POST", ready.url("/token"), iat=ready.now() + offset)
    response = token_call(ready, {"DPoP": proof})
    if ok:
        assert response.status_code == 200, response.text
    else:
        assert_dpop_error(response)


def test_replayed_proof(ready: Ready) -> None:
    """D11: the same proof twice."""
    proof = ready.proof(ready._client, "POST", ready.url("/token"))
    assert token_call(ready, {"DPoP": proof}).status_code == 200
    assert_dpop_error(token_call(ready, {"DPoP": proof}))


def test_nonce_is_required(ready: Ready) -> None:
    """D12 / AS16: no nonce -> 400 use_dpop_nonce with one DPoP-Nonce header; retrying with it works."""
    proof = ready.proof(ready._client, "POST", ready.url("/token"), nonce=None)
    response = token_call(ready, {"DPoP": proof})
    assert_dpop_error(response, "use_dpop_nonce")
    nonces = response.headers.get_list("dpop-nonce")
    assert len(nonces) == 1 and len(nonces[0]) >= 22
    retry = ready.proof(ready._client, "POST", ready.url("/token"), nonce=nonces[0])
    assert token_call(ready, {"DPoP": retry}).status_code == 200


def test_wrong_nonce(ready: Ready) -> None:
    proof = ready.proof(ready._client, "POST", ready.url("/token"), nonce="made-up")
    assert_dpop_error(token_call(ready, {"DPoP": proof}), "use_dpop_nonce")


def test_nonce_rotates_with_the_clock(ready: Ready) -> None:
    """Nonces expire: after two steps the old nonce yields use_dpop_nonce."""
    old = ready.fresh_nonce()
    assert ready.as_.server is not None
    ready.as_.clock.advance(ready.as_.server.settings.dpop_nonce_step * 2 + 1)
    proof = ready.proof(ready._client, "POST", ready.url("/token"), nonce=old)
    response = token_call(ready, {"DPoP": proof})
    assert_dpop_error(response, "use_dpop_nonce")
    assert response.headers["dpop-nonce"] != old


def test_unknown_extra_claims_are_accepted(ready: Ready) -> None:
    proof = ready.proof(ready._client, "POST", ready.url("/token"), extra_claims={"x-extra": 1})
    assert token_call(ready, {"DPoP": proof}).status_code == 200


@pytest.mark.parametrize("alg", ["PS256", "EdDSA"])
def test_other_fapi_algorithms(ready: Ready, alg: str) -> None:
    key = SigningKey.generate(alg)
    proof = make_proof(key, "POST", ready.url("/token"), nonce=ready.fresh_nonce(), iat=ready.now())
    assert token_call(ready, {"DPoP": proof}).status_code == 200
