"""Signed request objects at PAR (RFC 9101 with RFC 9126 3; FAPI 2.0 Message Signing 5.3.1):
the object is verified with the client's registered key, its claims checked, and its content
alone becomes the authorization request. Every refusal: 400 ``invalid_request_object``."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws

from corridor.core.b64 import b64url_decode, b64url_encode
from corridor.core.jose import SigningKey, jwk_thumbprint, read_header, registry_for, verify_with_keys
from corridor.core.pkce import new_verifier, s256_challenge
from corridor.core.randomness import new_secret_token
from corridor.core.rules import Rule
from corridor.transport.tls import DevTLS, ensure_dev_tls
from tests.pki import TestPKI
from tests.stubserver import stub_server
from tests.support import RESOURCE, Client, Driver, Flow, decode_jwt, running_as, ssl_context_of

TYP = "oauth-authz-req+jwt"


# -- helpers -----------------------------------------------------------------------------------


def object_claims(driver: Driver, client: Client, flow: Flow, **claims: Any) -> dict[str, Any]:
    """What the OIDF suite and oauth4webapi put into a request object."""
    now = int(driver.now())
    body: dict[str, Any] = {
        "iss": client.client_id,
        "aud": driver.issuer,
        "client_id": client.client_id,
        "nbf": now,
        "exp": now + 300,
        "jti": new_secret_token(),
        "response_type": "code",
        "redirect_uri": client.redirect_uri,
        "scope": "openid accounts",
        "state": flow.state,
        "code_challenge": s256_challenge(flow.verifier),
        "code_challenge_method": "S256",
    }
    body.update(claims)
    return body


def sign(
    driver: Driver,
    client: Client,
    flow: Flow | None = None,
    *,
    typ: str | None = TYP,
    key: SigningKey | None = None,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    body = object_claims(driver, client, flow or new_flow(), **{**claims, **(extra or {})})
    for name in drop:
        body.pop(name)
    signer = key or client.key
    if typ is None:
        return unsigned_header_token(signer, {"alg": signer.alg, "kid": signer.kid, **(header or {})}, body)
    return signer.sign(body, typ, header)


def unsigned_header_token(key: SigningKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWS with exactly ``header`` (SigningKey.sign always sets typ), signed by ``key``."""
    return jws.serialize_compact(
        header, json.dumps(claims), key.key, algorithms=[key.alg], registry=registry_for([key.alg])
    )


def new_flow() -> Flow:
    return Flow(verifier=new_verifier(), state=new_secret_token())


def push(
    driver: Driver, client: Client, request: str | None, outside: dict[str, str] | None = None
) -> httpx.Response:
    """POST /par with only client authentication, ``request`` and ``outside`` (as the suite does)."""
    form: dict[str, str] = {**driver.client_auth(client), **(outside or {})}
    if request is not None:
        form["request"] = request
    proof = driver.proof(client, "POST", driver.htu("/par"))
    return driver.http.post(driver.url("/par"), data=form, headers={"DPoP": proof})


def assert_refused(response: httpx.Response, words: str, error: str = "invalid_request_object") -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error, response.text
    assert words in response.json()["error_description"], response.text
    assert response.headers["cache-control"] == "no-store"


def flow_through(driver: Driver, client: Client, flow: Flow, response: httpx.Response) -> dict[str, Any]:
    """From a 201 PAR answer: sign-in, consent, code, tokens."""
    assert response.status_code == 201, response.text
    flow.request_uri = response.json()["request_uri"]
    final = driver.authorize(client, flow)
    assert final.status_code == 303 and flow.code, final.text
    assert flow.callback["state"] == flow.state
    tokens = driver.redeem(client, flow)
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    return body


def par_records(driver: Driver, client: Client) -> list[dict[str, Any]]:
    return [
        {**r, "detail": json.loads(r["detail"] or "{}")}
        for r in driver.as_.store.audit.records()
        if r["client_id"] == client.client_id and r["event"] == "par"
    ]


# -- signed requests that work -----------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_signed_par_flow_completes(driver: Driver, alg: str) -> None:
    """FAPI 2.0 Message Signing 5.3.1-1: a signed object at PAR, then authorize, consent, token."""
    client = driver.add_client(alg=alg, require_signed_request_object=True)
    flow = new_flow()
    tokens = flow_through(driver, client, flow, push(driver, client, sign(driver, client, flow)))
    assert tokens["scope"] == "openid accounts"
    assert decode_jwt(tokens["access_token"])[1]["client_id"] == client.client_id


@pytest.mark.parametrize("typ", ["JWT", TYP, "OautH-auThZ-REQ+jWt", "application/oauth-authz-req+jwt", None])
def test_accepted_types(driver: Driver, typ: str | None) -> None:
    """FAPI 2.0 Message Signing 5.3.1-5: oauth-authz-req+jwt accepted; JWT and no typ too; RFC 7515
    4.1.9: case-insensitive (the OIDF suite's second client randomises the case)."""
    client = driver.add_client()
    flow = new_flow()
    jws = sign(driver, client, flow, typ=typ)
    assert read_header(jws).get("typ") == typ
    flow_through(driver, client, flow, push(driver, client, jws))


def test_aud_array_containing_the_issuer_is_accepted(driver: Driver) -> None:
    """FAPI 2.0 Message Signing 5.3.1-2 (the suite's ensure-request-object-with-multiple-aud-succeeds)."""
    client = driver.add_client()
    aud = [driver.issuer, "https://other1.example.com", "invalid"]
    assert push(driver, client, sign(driver, client, aud=aud)).status_code == 201


def test_without_jti_client_id_or_iat(driver: Driver) -> None:
    """The suite's first client sends no jti and no iat; client_id is not required inside (iss is)."""
    client = driver.add_client()
    response = push(driver, client, sign(driver, client, drop=("jti", "client_id")))
    assert response.status_code == 201, response.text


def test_nbf_a_little_in_the_future_is_accepted(driver: Driver) -> None:
    """The suite's ensure-request-object-with-nbf-8-seconds-in-the-future-is-accepted (clock skew)."""
    client = driver.add_client()
    now = int(driver.now())
    assert push(driver, client, sign(driver, client, nbf=now + 8)).status_code == 201


def test_sixty_minutes_exactly_is_accepted(driver: Driver) -> None:
    """FAPI 2.0 Message Signing 5.3.1-3/-4 at the limits: exp 60 minutes after nbf, nbf 60 minutes old."""
    client = driver.add_client()
    now = int(driver.now())
    assert push(driver, client, sign(driver, client, nbf=now, exp=now + 3600)).status_code == 201
    old = sign(driver, client, nbf=now - 3600 + 2, exp=now + 2)  # 2 s for the time the test takes
    assert push(driver, client, old).status_code == 201


# -- aud ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("aud", ["https://www.other1.example.com/", "PAR", ["https://other.example"], 7])
def test_wrong_aud(driver: Driver, aud: Any) -> None:
    """FAPI 2.0 Message Signing 5.3.1-2: aud is the issuer; the PAR endpoint URL is not."""
    client = driver.add_client()
    aud = driver.issuer + "/par" if aud == "PAR" else aud
    response = push(driver, client, sign(driver, client, aud=aud))
    assert_refused(response, "the request object's aud must be the issuer (FAPI 2.0 Message Signing 5.3.1-2")


def test_missing_aud(driver: Driver) -> None:
    client = driver.add_client()
    assert_refused(push(driver, client, sign(driver, client, drop=("aud",))), "aud must be the issuer")


# -- time --------------------------------------------------------------------------------------


def test_expired(driver: Driver) -> None:
    """RFC 7519 4.1.4: the same object, accepted, then refused once the clock passed its exp."""
    client = driver.add_client()
    accepted = push(driver, client, sign(driver, client, drop=("jti",)))
    assert accepted.status_code == 201, accepted.text
    jws = sign(driver, client, drop=("jti",))
    driver.as_.clock.advance(301)
    assert_refused(push(driver, client, jws), "the request object has expired")


def test_nbf_61_minutes_old(driver: Driver) -> None:
    """FAPI 2.0 Message Signing 5.3.1-3: signed with nbf now, pushed 61 minutes later (exp still ahead)."""
    client = driver.add_client()
    now = int(driver.now())
    jws = sign(driver, client, nbf=now, exp=now + 3600 + 120)
    driver.as_.clock.advance(61 * 60)
    assert_refused(push(driver, client, jws), "nbf is more than 60 minutes in the past")
    now = int(driver.now())
    old = sign(driver, client, nbf=now - 61 * 60, exp=now + 300)
    assert_refused(push(driver, client, old), "nbf is more than 60 minutes in the past")


def test_exp_more_than_60_minutes_after_nbf(driver: Driver) -> None:
    """FAPI 2.0 Message Signing 5.3.1-4 (the suite's exp-over-60: exp now + 70 min)."""
    client = driver.add_client()
    now = int(driver.now())
    for exp in (now + 3601, now + 70 * 60):
        response = push(driver, client, sign(driver, client, nbf=now, exp=exp))
        assert_refused(response, "exp must be after nbf by no more than 60 minutes")


def test_exp_before_nbf(driver: Driver) -> None:
    client = driver.add_client()
    now = int(driver.now())
    response = push(driver, client, sign(driver, client, nbf=now + 8, exp=now + 5))
    assert_refused(response, "exp must be after nbf")


@pytest.mark.parametrize("claim", ["nbf", "exp"])
def test_time_claim_missing_or_not_a_number(driver: Driver, claim: str) -> None:
    """FAPI 2.0 Message Signing 5.3.1-3/-4: nbf and exp are required NumericDates."""
    client = driver.add_client()
    assert_refused(push(driver, client, sign(driver, client, drop=(claim,))), f"needs an {claim}")
    for value in ("1700000000", True, None, 1e300):
        assert_refused(push(driver, client, sign(driver, client, extra={claim: value})), f"needs an {claim}")


def test_nbf_in_the_future(driver: Driver) -> None:
    """RFC 7519 4.1.5: beyond the clock skew (the suite's client test allows none either)."""
    client = driver.add_client()
    now = int(driver.now())
    response = push(driver, client, sign(driver, client, nbf=now + 60, exp=now + 300))
    assert_refused(response, "nbf is in the future")


# -- alg, typ, signature -----------------------------------------------------------------------


def test_alg_none(driver: Driver) -> None:
    """FAPI2 5.4.1-1b: an unsigned (alg none) object is refused."""
    client = driver.add_client()
    header = b64url_encode(json.dumps({"alg": "none", "typ": TYP}).encode())
    payload = b64url_encode(json.dumps(object_claims(driver, client, new_flow())).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}.c2ln"):
        assert_refused(push(driver, client, token), "alg must be PS256, ES256 or EdDSA")


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_hs256_with_the_public_key_as_secret(driver: Driver, alg: str) -> None:
    """FAPI2 5.4.1-1b: no MAC, even keyed with the client's public key (the alg-confusion attack)."""
    client = driver.add_client(alg=alg)
    public = client.key.key.public_key
    assert not isinstance(public, bytes)
    secrets = [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(client.key.public_jwk).encode(),
    ]
    for secret in secrets:
        header = b64url_encode(json.dumps({"alg": "HS256", "typ": TYP, "kid": client.key.kid}).encode())
        payload = b64url_encode(json.dumps(object_claims(driver, client, new_flow())).encode())
        mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        token = f"{header}.{payload}.{b64url_encode(mac)}"
        assert_refused(push(driver, client, token), "alg must be PS256, ES256 or EdDSA")


def test_signed_with_another_clients_key(driver: Driver) -> None:
    """FAPI 2.0 Message Signing 5.3.1-1, RFC 9101 6.2: only the authenticated client's keys count
    (the suite's ensure-matching-key-in-authorization-request): its own kid, another's kid."""
    client, other = driver.add_client(), driver.add_client()
    for header in ({}, {"kid": client.key.kid}):
        jws = sign(driver, client, key=other.key, header=header)
        assert_refused(
            push(driver, client, jws), "signature does not verify with the client's registered keys"
        )


def test_corrupted_signature(driver: Driver) -> None:
    """The suite's ensure-request-object-with-invalid-signature-fails."""
    client = driver.add_client()
    jws = sign(driver, client)
    head, payload, signature = jws.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert_refused(push(driver, client, f"{head}.{payload}.{flipped}"), "signature does not verify")


@pytest.mark.parametrize("typ", ["at+jwt", "dpop+jwt", "client-authentication+jwt", "jwt+oauth-authz-req"])
def test_wrong_typ(driver: Driver, typ: str) -> None:
    """FAPI 2.0 Message Signing 5.3.1-5, RFC 8725 3.11: another kind of JWT is not a request object."""
    client = driver.add_client()
    assert_refused(push(driver, client, sign(driver, client, typ=typ)), "typ must be oauth-authz-req+jwt")


def test_typ_not_a_string(driver: Driver) -> None:
    """RFC 7515 4.1.9: typ is a string (refused before the signature is looked at)."""
    client = driver.add_client()
    header = _b64(json.dumps({"alg": client.key.alg, "typ": 7}).encode())
    payload = _b64(json.dumps(object_claims(driver, client, new_flow())).encode())
    assert_refused(push(driver, client, f"{header}.{payload}.c2ln"), "typ must be oauth-authz-req+jwt")


# -- who signed --------------------------------------------------------------------------------


def test_iss_not_the_client(driver: Driver) -> None:
    """RFC 9101 4: iss is the client_id (required)."""
    client, other = driver.add_client(), driver.add_client()
    for claims in ({"iss": other.client_id}, {"iss": driver.issuer}):
        response = push(driver, client, sign(driver, client, extra=claims))
        assert_refused(response, "iss must be the authenticated client's client_id")
    assert_refused(push(driver, client, sign(driver, client, drop=("iss",))), "iss must be")


def test_client_id_claim_of_another_client(driver: Driver) -> None:
    """RFC 9126 3: the object's client_id is the authenticated client."""
    client, other = driver.add_client(), driver.add_client()
    response = push(driver, client, sign(driver, client, client_id=other.client_id))
    assert_refused(response, "client_id must be the authenticated client")


def test_object_of_another_client_pushed_by_this_one(driver: Driver) -> None:
    """A second client pushing the first one's (valid) signed object fails at the signature."""
    client, other = driver.add_client(), driver.add_client()
    assert_refused(push(driver, other, sign(driver, client)), "signature does not verify")


# -- the object's content is the request ------------------------------------------------------


def test_outside_parameters_are_ignored(driver: Driver) -> None:
    """RFC 9126 3, RFC 9101 5/6.3: outside parameters do not override the object, whatever they
    are (an unregistered redirect_uri, another scope and state, response_type=token); their names
    go into the record."""
    client = driver.add_client()
    flow = new_flow()
    outside = {
        "redirect_uri": "https://attacker.example/cb",
        "scope": "openid payments",
        "state": "outside",
        "response_type": "token",
        "code_challenge_method": "plain",
        "resource": "https://attacker.example/api",
    }
    response = push(driver, client, sign(driver, client, flow), outside)
    tokens = flow_through(driver, client, flow, response)
    assert tokens["scope"] == "openid accounts"
    assert flow.callback["state"] == flow.state  # came back to the registered redirect_uri
    record = par_records(driver, client)[-1]
    assert record["outcome"] == "accepted" and record["redirect_uri"] == client.redirect_uri
    assert record["detail"]["ignored_parameters"] == sorted(outside)


def test_outside_only_parameters_do_not_fill_the_object(driver: Driver) -> None:
    """A parameter only outside is ignored too: no redirect_uri inside means none at all (the
    suite's ensure-request-object-without-redirect-uri-fails)."""
    client = driver.add_client()
    response = push(
        driver, client, sign(driver, client, drop=("redirect_uri",)), {"redirect_uri": client.redirect_uri}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert "redirect_uri is required" in response.json()["error_description"]


def test_par_rules_apply_to_the_objects_content(driver: Driver) -> None:
    """Every PAR rule runs on the object: response_type, PKCE, scope, dpop_jkt."""
    client = driver.add_client()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"scope": "openid nope"}, "invalid_scope"),
        ({"dpop_jkt": SigningKey.generate().thumbprint()}, "invalid_dpop_proof"),
    ]
    for claims, error in cases:
        response = push(driver, client, sign(driver, client, **claims))
        assert response.status_code == 400 and response.json()["error"] == error, (claims, response.text)


def test_structured_claims_become_parameters(driver: Driver) -> None:
    """RFC 9101 6.3: authorization_details as an array, max_age as a number, resource as an
    array (RFC 8707), each carried to the grant."""
    client = driver.add_client()
    flow = new_flow()
    details = [{"type": "account_information", "actions": ["read"], "permissions": ["balances"]}]
    jws = sign(driver, client, flow, authorization_details=details, max_age=3600, resource=[RESOURCE])
    tokens = flow_through(driver, client, flow, push(driver, client, jws))
    claims = decode_jwt(tokens["access_token"])[1]
    assert claims["authorization_details"] == details and claims["aud"] == RESOURCE


@pytest.mark.parametrize(
    "claims",
    [
        {"scope": 5},
        {"state": {"a": 1}},
        {"resource": [RESOURCE, 1]},
        {"max_age": True},
        {"authorization_details": {"type": "x"}},
        {"nonce": None},
    ],
)
def test_a_parameter_of_the_wrong_type(driver: Driver, claims: dict[str, Any]) -> None:
    """RFC 9101 6.3: a claim that is no parameter value."""
    client = driver.add_client()
    assert_refused(push(driver, client, sign(driver, client, **claims)), "has a value of the wrong type")


@pytest.mark.parametrize("name", ["request", "request_uri"])
def test_nested_request(driver: Driver, name: str) -> None:
    """RFC 9101 4: no request or request_uri inside (the suite's par-...-containing-request_uri)."""
    client = driver.add_client()
    jws = sign(driver, client, extra={name: "urn:ietf:params:oauth:request_uri:x"})
    assert_refused(push(driver, client, jws), "must not contain request or request_uri")


def test_request_uri_outside_is_still_refused(driver: Driver) -> None:
    """RFC 9126 2.1 comes first: a request_uri at PAR is invalid_request even with an object."""
    client = driver.add_client()
    response = push(
        driver, client, sign(driver, client), {"request_uri": "urn:ietf:params:oauth:request_uri:x"}
    )
    assert_refused(response, "request_uri is not allowed at PAR", error="invalid_request")


# -- requiring signed requests -----------------------------------------------------------------


def test_unsigned_par_from_a_client_that_must_sign(driver: Driver) -> None:
    """FAPI 2.0 Message Signing 5.3.1-1, RFC 9101 10.5: 400 invalid_request (the suite's
    ensure-unsigned-request-at-par-endpoint-fails; oidc-provider answers the same)."""
    client = driver.add_client(require_signed_request_object=True)
    response, _ = driver.par(client)
    assert_refused(response, "a signed request object is required for this client", error="invalid_request")
    record = par_records(driver, client)[-1]
    assert record["rule"] == Rule.FAPI2_MS_5_3_1_1_RFC_9101_10_5
    assert push(driver, client, sign(driver, client)).status_code == 201  # control
    plain = driver.add_client()
    assert driver.par(plain)[0].status_code == 201  # a client that need not sign still may not


def test_server_wide_setting(tmp_path: Path, tls: DevTLS) -> None:
    """settings.require_signed_request_object: every client must sign."""
    with running_as(tmp_path, tls, require_signed_request_object=True) as as_:
        driver = Driver(as_)
        try:
            client = driver.add_client()
            assert (
                as_.http()
                .get(as_.issuer + "/.well-known/oauth-authorization-server")
                .json()["require_signed_request_object"]
            )
            response, _ = driver.par(client)
            assert_refused(response, "a signed request object is required", error="invalid_request")
            assert push(driver, client, sign(driver, client)).status_code == 201
        finally:
            driver.http.close()


# -- replay ------------------------------------------------------------------------------------


def test_replayed_jti(driver: Driver) -> None:
    """RFC 7519 4.1.7: an object with a jti is pushed once; the same jti in a new object neither."""
    client = driver.add_client()
    jti = new_secret_token()
    jws = sign(driver, client, jti=jti)
    assert push(driver, client, jws).status_code == 201
    assert_refused(push(driver, client, jws), "the request object was already pushed")
    assert_refused(push(driver, client, sign(driver, client, jti=jti)), "already pushed")
    other = driver.add_client()  # jti is per client
    assert push(driver, other, sign(driver, other, jti=jti)).status_code == 201


def test_without_jti_the_same_object_may_be_pushed_again(driver: Driver) -> None:
    """No jti, no replay tracking (the suite sends none); each push gets its own request_uri."""
    client = driver.add_client()
    jws = sign(driver, client, drop=("jti",))
    first, second = push(driver, client, jws), push(driver, client, jws)
    assert first.status_code == second.status_code == 201
    assert first.json()["request_uri"] != second.json()["request_uri"]


@pytest.mark.parametrize("jti", [7, "", "a\nb", "x" * 300])
def test_malformed_jti(driver: Driver, jti: Any) -> None:
    client = driver.add_client()
    assert_refused(push(driver, client, sign(driver, client, jti=jti)), "jti is malformed")


# -- garbage -----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return b64url_encode(data)


GARBAGE = [
    "not-a-jws",
    "x" * 20_000,
    "!!!.@@@.###",
    "a.b.c.d.e",
    _b64(b'{"alg":"ES256"}') + "." + _b64(b"not json") + ".c2ln",
    _b64(b'{"alg":"ES256"}') + "." + _b64(b"[1,2]") + ".c2ln",
    _b64(b'{"alg":"ES256"}') + ".é.c2ln",
    _b64(b'["alg"]') + ".e30.c2ln",
    _b64(b'{"alg":5}') + ".e30.c2ln",
    _b64(b'{"alg":"ES256","crit":["exp"]}') + ".e30.c2ln",
    _b64(b'{"alg":"ES256","kid":["a"]}') + ".e30.c2ln",
    _b64(b'{"alg":"ES256","alg":"PS256"}') + ".e30.c2ln",
]


@pytest.mark.parametrize("request_object", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_in_request(driver: Driver, request_object: str) -> None:
    """Never a 500: not a JWS, 20 kB, bad base64, a header or payload that is not an object."""
    client = driver.add_client()
    response = push(driver, client, request_object)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request_object", response.text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
NAMES = st.sampled_from(
    [
        "scope",
        "state",
        "resource",
        "max_age",
        "authorization_details",
        "claims",
        "nonce",
        "prompt",
        "redirect_uri",
        "dpop_jkt",
        "client_id",
        "client_assertion",
        "iss",
        "aud",
        "exp",
        "nbf",
        "x\u202e",
    ]
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(claims=st.dictionaries(NAMES, JSON, max_size=4))
def test_any_claims_give_a_precise_answer(driver: Driver, claims: dict[str, Any]) -> None:
    """Property: whatever a correctly signed object carries, the answer is 201 or a 400 with an
    OAuth error (never a 500, never an exception escaping)."""
    client = driver.add_client()
    response = push(driver, client, sign(driver, client, extra=claims))
    assert response.status_code in (201, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"] in (
            "invalid_request_object",
            "invalid_request",
            "invalid_scope",
            "invalid_target",
            "invalid_authorization_details",
            "invalid_dpop_proof",
            "unsupported_response_type",
        ), response.text


def test_a_client_without_registered_keys(driver: Driver, pki: TestPKI) -> None:
    """An mTLS client that registered no JWKS has no key to verify an object with."""
    dn = "CN=request-object client,O=Test"
    certificate = pki.issue(dn)
    client = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": dn},
    )
    form = {"client_id": client.client_id, "request": sign(driver, client)}
    with driver.mtls_http(certificate) as http:
        response = http.post(driver.mtls_url("/par"), data=form)
    assert_refused(response, "the client registered no keys")
    # control: the same client's unsigned request is accepted
    unsigned = object_claims(driver, client, new_flow())
    unsigned = {k: v for k, v in unsigned.items() if k not in ("iss", "aud", "nbf", "exp", "jti")}
    with driver.mtls_http(certificate) as http:
        assert http.post(driver.mtls_url("/par"), data=unsigned).status_code == 201


@pytest.fixture
def rotating_jwks(tmp_path: Path) -> Iterator[tuple[str, list[dict[str, Any]], Path]]:
    """An HTTPS jwks_uri whose key list the test can change."""
    tls = ensure_dev_tls(tmp_path / "jwks-tls")
    keys: list[dict[str, Any]] = []

    def answer(path: str) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps({"keys": keys}).encode()

    with stub_server(answer, (tls.cert_file, tls.key_file)) as url:
        yield url + "/jwks", keys, tls.ca_file


def test_jwks_uri_client_signing_with_a_new_key(
    driver: Driver, rotating_jwks: tuple[str, list[dict[str, Any]], Path]
) -> None:
    """FAPI2 5.4.2: a jwks_uri client's object signed with a key it published after the AS cached
    its JWKS verifies once the cache is refetched (as client authentication does)."""
    url, keys, ca_file = rotating_jwks
    assert driver.as_.server is not None
    ssl_context_of(driver.as_.server.http).load_verify_locations(str(ca_file))
    old, new = SigningKey.generate("ES256"), SigningKey.generate("EdDSA")
    keys.append(old.public_jwk)
    client = driver.add_client(jwks_uri=url, key=old)
    assert push(driver, client, sign(driver, client)).status_code == 201  # the JWKS is now cached
    keys.append(new.public_jwk)
    driver.as_.clock.advance(31)  # past the refetch floor, within the cache lifetime
    response = push(driver, client, sign(driver, client, key=new))
    assert response.status_code == 201, response.text
    record = par_records(driver, client)[-1]
    assert record["detail"]["request_object"]["key_thumbprint"] == new.thumbprint()
    stranger = SigningKey.generate("ES256")
    assert_refused(push(driver, client, sign(driver, client, key=stranger)), "signature does not verify")


def test_metadata(driver: Driver) -> None:
    """RFC 8414 / OIDC Discovery, RFC 9101 10.5: request objects at PAR, FAPI algorithms only."""
    metadata = driver.http.get(driver.url("/.well-known/oauth-authorization-server")).json()
    assert metadata["request_parameter_supported"] is True
    assert metadata["request_object_signing_alg_values_supported"] == ["PS256", "ES256", "EdDSA"]
    assert metadata["require_signed_request_object"] is False
    assert not any(name.startswith("request_object_encryption") for name in metadata)


# -- evidence ----------------------------------------------------------------------------------


def test_the_par_record_and_the_kept_object(driver: Driver) -> None:
    """Issue 17 evidence: the PAR record names the object (SHA-256, kid, alg, signer, key
    thumbprint, jti) and the JWS is kept; it verifies offline with the client's public key."""
    client = driver.add_client(alg="PS256")
    flow = new_flow()
    jws = sign(driver, client, flow)
    flow_through(driver, client, flow, push(driver, client, jws))
    record = next(r for r in par_records(driver, client) if r["outcome"] == "accepted")
    sha256 = hashlib.sha256(jws.encode()).hexdigest()
    assert record["detail"]["request_object"] == {
        "sha256": sha256,
        "kid": client.key.kid,
        "alg": "PS256",
        "signer": client.client_id,
        "key_thumbprint": jwk_thumbprint(client.key.public_jwk),
        "jti": decode_jwt(jws)[1]["jti"],
    }
    kept = driver.as_.store.messages.get(sha256)
    assert kept is not None
    assert kept["jws"] == jws and kept["kind"] == "request_object" and kept["client_id"] == client.client_id
    claims = verify_with_keys(kept["jws"], read_header(kept["jws"]), [client.key.public_jwk])
    assert claims["state"] == flow.state and claims["aud"] == driver.issuer


def test_a_refused_object_is_not_kept(driver: Driver) -> None:
    client = driver.add_client()
    jws = sign(driver, client, scope="openid nope")
    assert push(driver, client, jws).status_code == 400
    assert driver.as_.store.messages.get(hashlib.sha256(jws.encode()).hexdigest()) is None
    record = par_records(driver, client)[-1]
    assert record["outcome"] == "refused" and record["error"] == "invalid_scope"


def test_a_lone_surrogate_in_a_claim(driver: Driver) -> None:
    """A JSON escape no UTF-8 text can hold (a lone surrogate) never reaches the store as a 500."""
    client = driver.add_client()
    jws = sign(driver, client, typ=None, state="\ud800", nonce="\udfff")
    assert b"\\ud800" in b64url_decode(jws.split(".")[1])  # escaped in the JSON, signed
    response = push(driver, client, jws)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request_object"
