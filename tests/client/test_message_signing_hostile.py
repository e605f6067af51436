"""FAPI 2.0 Message Signing in corridor.client against a deliberately broken AS (the hostile
server of test_hostile_server.py, real TLS): the signed request object it pushes (FMS 5.3.2)
and the JARM checks (FMS 5.4.2, JARM 2.4): every bad signed response is refused with
AuthorizationResponseError naming its rule, and the code endpoint is never called."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc import jws
from joserfc.jwk import RSAKey

from corridor.client import FapiClient
from corridor.client.aio import AsyncFapiClient
from corridor.client.errors import AuthorizationResponseError, ClientError
from corridor.client.flow import AuthorizationHandle
from corridor.client.signing import (
    RULE_JAR,
    RULE_JARM_ALG,
    RULE_JARM_AUD,
    RULE_JARM_EXP,
    RULE_JARM_ISS,
    RULE_JARM_MODE,
    RULE_JARM_NBF,
    RULE_JARM_SIGNATURE,
)
from corridor.core.b64 import b64url_encode
from corridor.core.clock import MovableClock
from corridor.core.jose import SigningKey, read_header, verify_with_keys
from corridor.transport.tls import DevTLS
from tests.client.test_hostile_server import REDIRECT, Hostile, serving_hostile
from tests.hostile import enc, sign_json
from tests.support import decode_jwt

CLIENT_ID = "hostile-client"  # the hostile AS issues its ID tokens to this one
#: What a request object carries besides the authorization parameters (FMS 5.3.2, RFC 9101 4).
ENVELOPE = {"iss", "aud", "client_id", "jti", "iat", "nbf", "exp"}
#: What may be sent at PAR outside the request object: client_id and client authentication.
OUTSIDE = {"endpoint", "client_id", "request", "client_assertion", "client_assertion_type"}


@pytest.fixture(scope="module")
def server(tls: DevTLS) -> Iterator[Hostile]:
    with serving_hostile(tls) as state:
        yield state


@pytest.fixture
def hostile(server: Hostile) -> Iterator[Hostile]:
    server.mode = set()
    server.nonce = "nonce-1"
    server.seen.clear()
    server.extra_metadata = {}
    server.extra_keys = []
    key = server.key
    yield server
    server.key = key  # a test that rotated the AS's key leaves the original


def make_client(hostile: Hostile, tls: DevTLS, **options: Any) -> FapiClient:
    options.setdefault("signed_request", True)
    options.setdefault("response_mode", "jwt")
    return FapiClient(
        hostile.issuer,
        CLIENT_ID,
        redirect_uri=REDIRECT,
        key=SigningKey.generate("ES256"),
        ca_file=str(tls.ca_file),
        **options,
    )


@pytest.fixture
def client(hostile: Hostile, tls: DevTLS) -> Iterator[FapiClient]:
    c = make_client(hostile, tls)
    yield c
    c.close()


def jarm_claims(hostile: Hostile, handle: AuthorizationHandle, **over: Any) -> dict[str, Any]:
    """A well-formed JARM response's claims (JARM 2.1); ``over`` changes them (None drops)."""
    claims: dict[str, Any] = {
        "iss": hostile.issuer,
        "aud": CLIENT_ID,
        "exp": int(time.time()) + 120,
        "code": "c0de",
        "state": handle.state,
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def jarm(hostile: Hostile, handle: AuthorizationHandle, key: SigningKey | None = None, **over: Any) -> str:
    return (key or hostile.key).sign(jarm_claims(hostile, handle, **over), "JWT")


def callback(response: str | None = None, **outside: str) -> str:
    params = {**({"response": response} if response is not None else {}), **outside}
    return REDIRECT + "?" + urlencode(params)


def token_calls(hostile: Hostile) -> list[dict[str, Any]]:
    return [s for s in hostile.seen if s["endpoint"] == "token"]


def pushed(hostile: Hostile) -> dict[str, Any]:
    pars = [s for s in hostile.seen if s["endpoint"] == "par"]
    assert pars
    return pars[-1]


# -- positive controls ------------------------------------------------------------------------------


def test_jar_and_jarm_flow(client: FapiClient, hostile: Hostile) -> None:
    url, handle = client.start("openid")
    assert set(parse_qs(urlsplit(url).query)) == {"client_id", "request_uri"}
    assert handle.response_mode == "jwt" and handle.request_object == pushed(hostile)["request"]
    response = jarm(hostile, handle)
    tokens = client.finish(callback(response), handle)
    assert tokens.token_type == "DPoP" and tokens.id_token_claims is not None
    assert tokens.authorization_response == response == client.last_authorization_response
    assert token_calls(hostile)[-1]["code"] == "c0de"


def test_jarm_aud_may_be_an_array_with_the_client(client: FapiClient, hostile: Hostile) -> None:
    _, handle = client.start("openid")
    response = jarm(hostile, handle, aud=["someone-else", CLIENT_ID])
    assert client.finish(callback(response), handle).authorization_response == response


def test_query_jwt_and_a_key_the_as_rotated_in(client: FapiClient, hostile: Hostile, tls: DevTLS) -> None:
    """JARM 2.4-5: the key is found by kid; an unknown kid fetches the JWKS once more."""
    other = make_client(hostile, tls, response_mode="query.jwt")
    try:
        _, handle = other.start("openid")
        assert decode_jwt(pushed(hostile)["request"])[1]["response_mode"] == "query.jwt"
        other.server_keys()  # the JWKS as it was
        before = hostile.jwks_fetches
        hostile.key = SigningKey.generate("PS256")  # then the AS rotates its key
        tokens = other.finish(callback(jarm(hostile, handle)), handle)
        assert tokens.authorization_response is not None
        assert hostile.jwks_fetches >= before + 1
    finally:
        other.close()


def test_a_signed_error_response_raises_as_today(client: FapiClient, hostile: Hostile) -> None:
    _, handle = client.start("openid")
    response = jarm(hostile, handle, code=None, error="access_denied", error_description="no")
    with pytest.raises(AuthorizationResponseError) as refused:
        client.finish(callback(response), handle)
    assert refused.value.error == "access_denied" and refused.value.rule == "RFC 6749 4.1.2.1"
    assert client.last_authorization_response == response  # the signed refusal is evidence
    assert not token_calls(hostile)


# -- the signed request object (FMS 5.3.2) -----------------------------------------------------------


def test_the_pushed_request_object(client: FapiClient, hostile: Hostile) -> None:
    details = [{"type": "payment_initiation", "instructedAmount": {"currency": "EUR", "amount": "12.00"}}]
    resources = ["https://rs.example.org/a", "https://rs.example.org/b"]
    _, handle = client.start(
        "openid accounts",
        resource=resources,
        authorization_details=details,
        acr_values="urn:acr:strong",
        max_age=300,
        extra={"prompt": "consent"},
    )
    first = pushed(hostile)
    # Outside: only client_id, the request object and the client authentication (FMS 5.3.2-1).
    assert set(first) == OUTSIDE, first
    assert first["client_id"] == CLIENT_ID
    request = first["request"]
    header = read_header(request)
    assert header["typ"] == "oauth-authz-req+jwt"  # FMS 5.3.2-5
    assert header["kid"] == client.key.kid and header["alg"] == "ES256"  # type: ignore[union-attr]
    claims = verify_with_keys(request, header, [client.key.public_jwk])  # type: ignore[union-attr]
    now = time.time()
    assert claims["iss"] == CLIENT_ID and claims["client_id"] == CLIENT_ID
    assert claims["aud"] == hostile.issuer  # a string, the issuer (FMS 5.3.2-2)
    assert abs(claims["nbf"] - now) < 5 and claims["iat"] == claims["nbf"]  # FMS 5.3.2-3
    assert 0 < claims["exp"] - claims["nbf"] <= 3600  # FMS 5.3.2-4
    assert claims["exp"] - claims["nbf"] == 300  # the default lifetime
    assert {k: v for k, v in claims.items() if k not in ENVELOPE} == {
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid accounts",
        "state": handle.state,
        "nonce": handle.nonce,
        "code_challenge": claims["code_challenge"],
        "code_challenge_method": "S256",
        "resource": resources,  # several: a JSON array
        "authorization_details": details,  # a JSON array, not a string
        "acr_values": "urn:acr:strong",
        "max_age": 300,
        "dpop_jkt": client.dpop_key.thumbprint(),
        "response_mode": "jwt",
        "prompt": "consent",
    }
    verifier_hash = hashlib.sha256(handle.code_verifier.encode()).digest()
    assert claims["code_challenge"] == b64url_encode(verifier_hash)

    # Each request object is new: another jti, state and PKCE challenge.
    client.start("openid accounts", resource=resources[0])
    second = decode_jwt(pushed(hostile)["request"])[1]
    assert second["jti"] != claims["jti"] and second["state"] != claims["state"]
    assert second["resource"] == resources[0]  # one resource: a string


def test_per_request_override_and_plain_par(hostile: Hostile, tls: DevTLS) -> None:
    """A client without Message Signing pushes plain parameters; ``start(signed_request=True,
    response_mode="jwt")`` signs this one request and expects JARM for it."""
    plain = make_client(hostile, tls, signed_request=False, response_mode=None)
    try:
        _, handle = plain.start("openid", authorization_details=[{"type": "x"}])
        form = pushed(hostile)
        assert "request" not in form and "response_mode" not in form
        assert json.loads(form["authorization_details"]) == [{"type": "x"}]
        assert handle.response_mode is None and handle.request_object is None
        _, signed = plain.start("openid", signed_request=True, response_mode="jwt")
        assert set(pushed(hostile)) == OUTSIDE and signed.response_mode == "jwt"
        with pytest.raises(AuthorizationResponseError) as refused:
            plain.finish(callback(code="c0de", state=signed.state, iss=hostile.issuer), signed)
        assert refused.value.rule == RULE_JARM_MODE
    finally:
        plain.close()


def test_request_object_lifetime_is_at_most_60_minutes(hostile: Hostile, tls: DevTLS) -> None:
    with pytest.raises(ClientError) as refused:
        make_client(hostile, tls, request_object_lifetime=3601)
    assert refused.value.rule == "FAPI2 MS 5.3.2-4"
    longest = make_client(hostile, tls, request_object_lifetime=3600)
    try:
        longest.start("openid")
        claims = decode_jwt(pushed(hostile)["request"])[1]
        assert claims["exp"] - claims["nbf"] == 3600
    finally:
        longest.close()


def test_a_signed_request_needs_a_key(hostile: Hostile, tls: DevTLS) -> None:
    """An mTLS client has no private_key_jwt key: signing is refused clearly, not crashed."""
    with pytest.raises(ClientError) as refused:
        FapiClient(
            hostile.issuer,
            CLIENT_ID,
            redirect_uri=REDIRECT,
            auth_method="self_signed_tls_client_auth",
            sender_constraint="mtls",
            signed_request=True,
        )
    assert refused.value.rule == RULE_JAR and "signing key" in str(refused.value)


@pytest.mark.parametrize("mode", ["fragment.jwt", "form_post.jwt", "fragment", "JWT"])
def test_response_modes_the_client_cannot_verify(hostile: Hostile, tls: DevTLS, mode: str) -> None:
    with pytest.raises(ClientError) as refused:
        make_client(hostile, tls, response_mode=mode)
    assert refused.value.rule == RULE_JARM_MODE


# -- hostile JARM responses (FMS 5.4.2-2, JARM 2.4) ----------------------------------------------------


def hs256(hostile: Hostile, handle: AuthorizationHandle) -> str:
    """Signed with a MAC whose secret anyone could pick (e.g. the public key's text)."""
    signing_input = f"{enc({'alg': 'HS256', 'kid': hostile.key.kid})}.{enc(jarm_claims(hostile, handle))}"
    secret = json.dumps(hostile.key.public_jwk).encode()
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


def alg_none(hostile: Hostile, handle: AuthorizationHandle) -> str:
    return f"{enc({'alg': 'none'})}.{enc(jarm_claims(hostile, handle))}."


def rs256(hostile: Hostile, handle: AuthorizationHandle) -> str:
    """A valid RS256 signature by a key the AS really publishes: still not a FAPI alg."""
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})
    hostile.extra_keys = [rsa.as_dict(private=False)]
    payload = json.dumps(jarm_claims(hostile, handle))
    return jws.serialize_compact({"alg": "RS256", "kid": "rsa-1"}, payload, rsa, algorithms=["RS256"])


def forged(hostile: Hostile, handle: AuthorizationHandle) -> str:
    """Signed by another key under the AS's kid."""
    impostor = SigningKey.generate("ES256")
    return sign_json(impostor, {"alg": "ES256", "kid": hostile.key.kid}, jarm_claims(hostile, handle))


def tampered(hostile: Hostile, handle: AuthorizationHandle) -> str:
    """The AS's signature over other claims (the code swapped)."""
    head, _, signature = jarm(hostile, handle).split(".")
    return f"{head}.{enc(jarm_claims(hostile, handle, code='stolen'))}.{signature}"


BAD_JARM = {
    "bad signature (another key)": (forged, RULE_JARM_SIGNATURE),
    "bad signature (claims changed)": (tampered, RULE_JARM_SIGNATURE),
    "not a JWS": (lambda h, handle: "not.a.jws", RULE_JARM_SIGNATURE),
    "wrong iss": (lambda h, handle: jarm(h, handle, iss="https://evil.example"), RULE_JARM_ISS),
    "iss with a trailing slash": (lambda h, handle: jarm(h, handle, iss=h.issuer + "/"), RULE_JARM_ISS),
    "no iss": (lambda h, handle: jarm(h, handle, iss=None), RULE_JARM_ISS),
    "wrong aud": (lambda h, handle: jarm(h, handle, aud="someone-else"), RULE_JARM_AUD),
    "aud array without the client": (lambda h, handle: jarm(h, handle, aud=["a", "b"]), RULE_JARM_AUD),
    "no aud": (lambda h, handle: jarm(h, handle, aud=None), RULE_JARM_AUD),
    "expired": (lambda h, handle: jarm(h, handle, exp=int(time.time()) - 120), RULE_JARM_EXP),
    "no exp": (lambda h, handle: jarm(h, handle, exp=None), RULE_JARM_EXP),
    "exp not a number": (lambda h, handle: jarm(h, handle, exp=str(int(time.time()) + 60)), RULE_JARM_EXP),
    "not valid yet": (lambda h, handle: jarm(h, handle, nbf=int(time.time()) + 120), RULE_JARM_NBF),
    "alg HS256": (hs256, RULE_JARM_ALG),
    "alg none": (alg_none, RULE_JARM_ALG),
    "alg RS256": (rs256, RULE_JARM_ALG),
}


@pytest.mark.parametrize("case", list(BAD_JARM))
def test_bad_jarm_responses_are_refused(client: FapiClient, hostile: Hostile, case: str) -> None:
    make, rule = BAD_JARM[case]
    _, handle = client.start("openid")
    response = make(hostile, handle)
    with pytest.raises(AuthorizationResponseError) as refused:
        client.finish(callback(response), handle)
    assert refused.value.rule == rule, str(refused.value)
    assert rule in str(refused.value)
    assert not token_calls(hostile)  # the code was never redeemed
    assert client.last_authorization_response is None


def test_an_alg_the_as_does_not_advertise(client: FapiClient, hostile: Hostile) -> None:
    hostile.extra_metadata = {"authorization_signing_alg_values_supported": ["PS256"]}
    _, handle = client.start("openid")
    with pytest.raises(AuthorizationResponseError) as refused:
        client.finish(callback(jarm(hostile, handle)), handle)  # signed ES256
    assert refused.value.rule == RULE_JARM_ALG
    assert "authorization_signing_alg_values_supported" in str(refused.value)


def test_expiry_allows_the_clients_clock_skew(hostile: Hostile, tls: DevTLS) -> None:
    """JARM 2.4-4 with the 60 s skew the client allows elsewhere: the clock is moved, never slept."""
    clock = MovableClock()
    skewed = make_client(hostile, tls, clock=clock)
    try:
        _, handle = skewed.start("openid")
        response = jarm(hostile, handle, exp=int(time.time()) + 10)
        clock.advance(50)  # 40 s past exp: within the skew
        assert skewed.finish(callback(response), handle).authorization_response == response
        _, handle = skewed.start("openid")
        response = jarm(hostile, handle, exp=int(time.time()) + 10)
        clock.advance(61)  # now 61 s past exp
        with pytest.raises(AuthorizationResponseError) as refused:
            skewed.finish(callback(response), handle)
        assert refused.value.rule == RULE_JARM_EXP
    finally:
        skewed.close()


def test_state_inside_the_jarm_response_must_match(client: FapiClient, hostile: Hostile) -> None:
    _, handle = client.start("openid")
    with pytest.raises(AuthorizationResponseError) as refused:
        client.finish(callback(jarm(hostile, handle, state="forged")), handle)
    assert refused.value.rule == "RFC 6749 4.1.2, FAPI2 5.3.3.2-4"
    assert not token_calls(hostile)


@pytest.mark.parametrize(
    "outside",
    [
        {},  # nothing at all
        {"state": "s"},  # no response parameter
        {"response": ""},  # an empty one
    ],
)
def test_a_missing_jarm_response(client: FapiClient, hostile: Hostile, outside: dict[str, str]) -> None:
    _, handle = client.start("openid")
    with pytest.raises(AuthorizationResponseError) as refused:
        client.finish(REDIRECT + ("?" + urlencode(outside) if outside else ""), handle)
    assert refused.value.rule == RULE_JARM_MODE and "JARM" in str(refused.value)
    assert not token_calls(hostile)


@pytest.mark.parametrize("error", [None, "access_denied"])
def test_a_plain_response_when_jarm_was_asked_for(
    client: FapiClient, hostile: Hostile, error: str | None
) -> None:
    """FMS 5.4.2: a correct-looking plain response (code, state, iss) is not a signed one."""
    _, handle = client.start("openid")
    plain = {"state": handle.state, "iss": hostile.issuer}
    plain.update({"error": error} if error else {"code": "c0de"})
    with pytest.raises(AuthorizationResponseError) as refused:
        client.finish(callback(**plain), handle)
    assert refused.value.rule == RULE_JARM_MODE
    assert "JARM" in str(refused.value) and "FAPI2 MS 5.4.2" in str(refused.value)
    assert refused.value.error is None  # an unsigned error is not taken for the AS's word
    assert not token_calls(hostile)


def test_the_code_comes_only_from_the_jwt(client: FapiClient, hostile: Hostile) -> None:
    """Parameters beside ``response`` in the URL are never read (JARM 2.1)."""
    _, handle = client.start("openid")
    client.finish(callback(jarm(hostile, handle), code="from-the-url", state="x"), handle)
    assert token_calls(hostile)[-1]["code"] == "c0de"


# -- the async twin ----------------------------------------------------------------------------------


def test_the_async_client_does_jar_and_jarm(hostile: Hostile, tls: DevTLS) -> None:
    async def run() -> None:
        client = AsyncFapiClient(
            hostile.issuer,
            CLIENT_ID,
            redirect_uri=REDIRECT,
            key=SigningKey.generate("EdDSA"),
            ca_file=str(tls.ca_file),
            signed_request=True,
            response_mode="jwt",
        )
        try:
            _, handle = await client.start("openid")
            assert set(pushed(hostile)) == OUTSIDE
            assert read_header(pushed(hostile)["request"])["typ"] == "oauth-authz-req+jwt"
            with pytest.raises(AuthorizationResponseError) as refused:
                await client.finish(callback(jarm(hostile, handle, aud="someone-else")), handle)
            assert refused.value.rule == RULE_JARM_AUD
            _, handle = await client.start("openid")
            response = jarm(hostile, handle)
            tokens = await client.finish(callback(response), handle)
            assert tokens.authorization_response == response == client.last_authorization_response
        finally:
            await client.aclose()

    asyncio.run(run())
