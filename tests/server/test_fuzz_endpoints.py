"""Fuzzing the running AS over real HTTPS (design rule: bad input never breaks us).

Malformed forms, hostile headers and garbage or mutated JWTs at /par, /token,
/introspect, /revoke, /userinfo and GET /authorize must give a precise OAuth
error: never a 5xx, never a stack trace. JSON endpoints answer errors with a JSON
object carrying an ``error`` string.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corridor.core.b64 import b64url_encode
from corridor.core.dpop import DPOP_TYP, access_token_hash
from corridor.core.jose import SigningKey
from corridor.core.randomness import new_secret_token
from corridor.transport.listeners import MAX_REQUEST_HEAD_BYTES
from tests.hostile import (
    B64URL,
    DELETE,
    apply,
    b64ish,
    deep_json,
    enc,
    enc_text,
    json_objects,
    json_values,
    mutations,
    sign_json,
)
from tests.support import JWT_BEARER, RESOURCE, Client, Driver, RunningAS

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


FORM = "application/x-www-form-urlencoded"
FORM_ENDPOINTS = ("/par", "/token", "/introspect", "/revoke")
#: Error codes an AS may answer with at these endpoints (RFC 6749 5.2, RFC 9126 2.3,
#: RFC 9449 5/8, RFC 8707 2, RFC 9396 5, RFC 7009 2.2.1, OIDC Core 3.1.2.6).
KNOWN_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "unsupported_response_type",
        "invalid_target",
        "invalid_authorization_details",
        "invalid_dpop_proof",
        "use_dpop_nonce",
        "request_not_supported",
        "invalid_request_object",
        "invalid_redirect_uri",
        "unsupported_token_type",
    }
)


#: uvicorn's own answer when h11 refuses a request before the application sees it.
UVICORN_REFUSAL = "Invalid HTTP request received."
#: h11's limit on an incomplete header section (uvicorn's default).
H11_HEADER_LIMIT = 16 * 1024


def refused_by_http_layer(response: httpx.Response) -> bool:
    """A header section over the limit is refused before the application: by the listener's cap
    on the request head (431, issue 13 B1), or by uvicorn with a plain-text 400 (depending on how
    TLS records split it). A 431 for a head within the cap is a failure, not a pass."""
    request = response.request
    size = sum(len(k) + len(v) + 4 for k, v in request.headers.raw)
    if response.status_code == 431:
        head = len(request.method) + len(request.url.raw_path) + len(" HTTP/1.1\r\n") + size + 2
        assert head > MAX_REQUEST_HEAD_BYTES, (head, response.text)
        assert response.text == "Request line and headers are over 16 KiB."
        assert response.headers.get("connection") == "close"
        return True
    return size > H11_HEADER_LIMIT and response.status_code == 400 and response.text == UVICORN_REFUSAL


def assert_robust(response: httpx.Response, *, json_errors: bool = True) -> None:
    """No 5xx, no stack trace; JSON endpoints answer errors with {"error": "..."}."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if refused_by_http_layer(response):
        return
    assert "Traceback" not in response.text
    assert "Traceback" not in str(response.headers)
    if json_errors and response.status_code >= 400:
        assert response.headers.get("content-type", "").startswith("application/json"), response.text[:200]
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body


# -- hostile data -------------------------------------------------------------------------------

json_part = st.one_of(
    json_values.map(enc),
    json_objects.map(enc),
    deep_json.map(enc_text),
    b64ish,
    st.text(B64URL + ".=+/ ", max_size=30),
)
#: ASCII strings that look more or less like a compact JWS.
jws_lookalikes = st.one_of(
    st.tuples(json_part, json_part, json_part).map(".".join),
    st.lists(json_part, max_size=5).map(".".join),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
)
#: Header values h11 lets through: visible latin-1, inner spaces, no CR/LF/NUL.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=120
).map(lambda text: text.strip().encode("latin-1"))


@st.composite
def proof_plans(draw: st.DrawFn) -> tuple[str, tuple[str, Any]]:
    """Where a valid DPoP proof gets one change: header, its jwk, or the claims."""
    where = draw(st.sampled_from(["header", "jwk", "claims"]))
    names = {
        "header": ("alg", "typ", "jwk", "kid", "crit", "b64"),
        "jwk": ("kty", "crv", "x", "y", "alg", "use", "kid", "d"),
        "claims": ("jti", "htm", "htu", "iat", "nonce", "ath"),
    }[where]
    return where, draw(mutations(names))


def mutated_proof(
    driver: Driver,
    key: SigningKey,
    method: str,
    url: str,
    plan: tuple[str, tuple[str, Any]],
    access_token: str | None = None,
) -> str:
    """A valid proof (fresh jti, current nonce) with the one change of ``plan``, signed by ``key``."""
    header: dict[str, Any] = {"alg": key.alg, "typ": DPOP_TYP, "jwk": key.public_jwk_without_meta()}
    claims: dict[str, Any] = {
        "jti": new_secret_token(),
        "htm": method,
        "htu": url,
        "iat": int(driver.now()),
        "nonce": driver.fresh_nonce(),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    where, change = plan
    apply({"header": header, "jwk": header["jwk"], "claims": claims}[where], change)
    return sign_json(key, header, claims)


@st.composite
def assertion_plans(draw: st.DrawFn) -> tuple[str, tuple[str, Any]]:
    where = draw(st.sampled_from(["header", "claims", "claims"]))
    names = {
        "header": ("alg", "typ", "kid", "crit", "jwk"),
        "claims": ("iss", "sub", "aud", "exp", "iat", "nbf", "jti"),
    }[where]
    return where, draw(mutations(names))


def mutated_assertion(driver: Driver, client: Client, plan: tuple[str, tuple[str, Any]]) -> str:
    """A valid private_key_jwt assertion with one change, signed by the client's key."""
    now = int(driver.now())
    header: dict[str, Any] = {"alg": client.key.alg, "typ": "JWT", "kid": client.key.kid}
    claims: dict[str, Any] = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": driver.issuer,
        "jti": new_secret_token(),
        "iat": now,
        "exp": now + 60,
    }
    where, change = plan
    apply({"header": header, "claims": claims}[where], change)
    return sign_json(client.key, header, claims)


#: Hostile JWTs that need no key: found by their shape alone.
DEEP_HEADER = enc_text("[" * 5000) + ".e30.AA"
DEEP_PAYLOAD = enc({"alg": "ES256"}) + "." + enc_text("[" * 5000) + ".AA"
SURROGATE_ISS = enc({"alg": "ES256"}) + "." + enc({"iss": "\ud800"}) + ".AA"

# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_client(as_server: RunningAS) -> Client:
    driver = Driver(as_server)
    try:
        return driver.add_client(resources=(RESOURCE,))
    finally:
        driver.http.close()


@pytest.fixture(scope="module")
def fuzz_user(as_server: RunningAS) -> str:
    driver = Driver(as_server)
    try:
        return driver.add_user()
    finally:
        driver.http.close()


def issue_tokens(as_server: RunningAS) -> tuple[Client, dict[str, Any]]:
    driver = Driver(as_server)
    browser = driver.browser()
    try:
        client = driver.add_client(resources=(RESOURCE,))
        response, flow = driver.par(client, extra={"resource": RESOURCE, "scope": "openid profile accounts"})
        assert response.status_code == 201, response.text
        assert driver.authorize(client, flow, browser).status_code == 303 and flow.code
        tokens = driver.redeem(client, flow)
        assert tokens.status_code == 200, tokens.text
        return client, tokens.json()
    finally:
        browser.http.close()
        driver.http.close()


@pytest.fixture(scope="module")
def userinfo_tokens(as_server: RunningAS) -> tuple[Client, dict[str, Any]]:
    """A live DPoP-bound token for /userinfo (never revoked by these tests)."""
    return issue_tokens(as_server)


@pytest.fixture(scope="module")
def grant_tokens(as_server: RunningAS) -> tuple[Client, dict[str, Any]]:
    """Live tokens the token, introspection and revocation fuzzers may use (and revoke)."""
    return issue_tokens(as_server)


_PUSHED: dict[int, tuple[float, str]] = {}


def pushed_request_uri(driver: Driver, client: Client) -> str:
    """A request_uri of an unexpired PAR for ``client`` (re-pushed every 45 s)."""
    cached = _PUSHED.get(id(driver.as_))
    if cached is None or time.monotonic() - cached[0] > 45:
        response, flow = driver.par(client)
        assert response.status_code == 201, response.text
        cached = _PUSHED[id(driver.as_)] = (time.monotonic(), flow.request_uri)
    return cached[1]


# -- forms ---------------------------------------------------------------------------------------

PARAM_NAMES = (
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "client_id",
    "client_assertion",
    "client_assertion_type",
    "client_secret",
    "response_type",
    "scope",
    "state",
    "nonce",
    "resource",
    "authorization_details",
    "token",
    "token_type_hint",
    "request_uri",
    "request",
    "dpop_jkt",
    "max_age",
)
names = st.sampled_from(PARAM_NAMES) | st.text(max_size=12)
values = st.text(max_size=60) | st.sampled_from(["", "²", "NaN", "[]", "\x00", JWT_BEARER, "a" * 3000])
pairs_bodies = st.lists(st.tuples(names, values), max_size=12).map(lambda pairs: urlencode(pairs).encode())
repeated_bodies = st.tuples(names, st.lists(values, min_size=2, max_size=4)).map(
    lambda item: urlencode([(item[0], v) for v in item[1]]).encode()
)
raw_bodies = st.one_of(
    pairs_bodies,
    repeated_bodies,
    st.binary(max_size=300),
    st.just(b""),
    st.binary(min_size=1, max_size=40).map(lambda b: b"client_id=" + b + b"\xff\xfe"),  # not UTF-8
    st.binary(min_size=1, max_size=12).map(lambda b: b"client_id=" + quote_from_bytes(b).encode()),
    st.sampled_from([b"a=%", b"a=%z1", b"=&=&", b"&&&", b"a", b"a=b;c=d", b"%00=%00"]),
    st.integers(60, 90).map(lambda n: "&".join(f"p{i}=v" for i in range(n)).encode()),  # > 64 fields
    st.integers(60_000, 70_000).map(lambda n: b"state=" + b"a" * n),  # around the 64 KiB cap
)
content_types = st.one_of(
    st.sampled_from(
        [
            FORM,
            FORM + "; charset=utf-8",
            FORM + "; charset=latin-1",
            "APPLICATION/X-WWW-FORM-URLENCODED",
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "",
            None,
        ]
    ),
    header_text,
)


@fuzz(100)
@given(st.sampled_from(FORM_ENDPOINTS), raw_bodies, content_types)
def test_malformed_bodies(driver: Driver, path: str, body: bytes, content_type: str | bytes | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    # httpx takes a bytes value under a str name (raw header bytes); its HeaderTypes does not say so.
    response = driver.http.post(driver.url(path), content=body, headers=headers)  # type: ignore[arg-type]
    assert_robust(response)


@fuzz(60)
@given(st.sampled_from(FORM_ENDPOINTS), st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]), raw_bodies)
def test_wrong_methods(driver: Driver, path: str, method: str, body: bytes) -> None:
    response = driver.http.request(method, driver.url(path), content=body, headers={"Content-Type": FORM})
    assert_robust(response)
    assert response.status_code == 405


# -- DPoP headers ---------------------------------------------------------------------------------

dpop_values = st.one_of(jws_lookalikes.map(lambda t: t.strip().encode()), header_text)


@fuzz(100)
@given(
    st.sampled_from(["/par", "/token"]),
    st.lists(dpop_values, max_size=3),
    st.none() | proof_plans(),
)
@example("/par", [DEEP_HEADER.encode()], None)
@example("/par", [], ("claims", ("iat", math.nan)))
@example("/par", [], ("claims", ("jti", "\ud800")))
def test_dpop_headers(
    driver: Driver,
    fuzz_client: Client,
    path: str,
    garbage: list[bytes],
    plan: tuple[str, tuple[str, Any]] | None,
) -> None:
    url = driver.url(path)
    dpop = list(garbage)
    if plan is not None:
        dpop.append(mutated_proof(driver, fuzz_client.dpop_key, "POST", url, plan).encode())
    form = {**driver.client_auth(fuzz_client), "grant_type": "refresh_token", "refresh_token": "x"}
    if path == "/par":
        form = {"client_id": fuzz_client.client_id, **driver.client_auth(fuzz_client)}
    headers = [(b"DPoP", value) for value in dpop]
    response = driver.http.post(url, data=form, headers=headers)
    assert_robust(response)


# -- Authorization headers ----------------------------------------------------------------------

authorization_values = st.one_of(
    header_text,
    st.tuples(
        st.sampled_from(["Basic ", "basic ", "DPoP ", "dpop ", "Bearer ", "Digest ", ""]), header_text
    ).map(lambda pair: (pair[0].encode() + pair[1]).strip()),
    st.binary(min_size=1, max_size=60).map(lambda b: b"Basic " + b64url_encode(b).encode()),
    jws_lookalikes.map(lambda t: (b"DPoP " + t.encode()).strip()),
)


@fuzz(100)
@given(
    st.sampled_from([*FORM_ENDPOINTS, "/userinfo"]),
    st.sampled_from(["GET", "POST"]),
    st.lists(authorization_values, max_size=3),
    st.lists(dpop_values, max_size=2),
    pairs_bodies,
)
@example("/userinfo", "GET", [b"DPoP " + DEEP_HEADER.encode()], [], b"")
def test_authorization_headers(
    driver: Driver, path: str, method: str, authorizations: list[bytes], dpop: list[bytes], body: bytes
) -> None:
    headers = [(b"Authorization", a) for a in authorizations] + [(b"DPoP", d) for d in dpop]
    headers.append((b"Content-Type", FORM.encode()))
    if path != "/userinfo":
        method = "POST"
    response = driver.http.request(method, driver.url(path), content=body, headers=headers)
    assert_robust(response, json_errors=path != "/userinfo")
    if path == "/userinfo" and not refused_by_http_layer(response):
        assert response.status_code in (400, 401, 403), response.text
        assert "www-authenticate" in response.headers


# -- client assertions -----------------------------------------------------------------------------


@fuzz(100)
@given(
    st.sampled_from(FORM_ENDPOINTS),
    st.one_of(jws_lookalikes, st.text(max_size=40)),
    st.none() | assertion_plans(),
    st.sampled_from([JWT_BEARER, JWT_BEARER, "", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"]),
)
@example("/par", DEEP_HEADER, None, JWT_BEARER)
@example("/token", DEEP_PAYLOAD, None, JWT_BEARER)
@example("/introspect", SURROGATE_ISS, None, JWT_BEARER)
@example("/par", "", ("claims", ("exp", math.nan)), JWT_BEARER)
@example("/revoke", "", ("claims", ("jti", "\ud800")), JWT_BEARER)
def test_client_assertions(
    driver: Driver,
    fuzz_client: Client,
    path: str,
    garbage: str,
    plan: tuple[str, tuple[str, Any]] | None,
    assertion_type: str,
) -> None:
    """Garbage assertions, and real ones (signed with the client's key) with one claim changed."""
    assertion = garbage if plan is None else mutated_assertion(driver, fuzz_client, plan)
    form = {
        "client_assertion_type": assertion_type,
        "client_assertion": assertion,
        "token": "t",
        "grant_type": "refresh_token",
        "refresh_token": "r",
    }
    response = driver.http.post(driver.url(path), data=form)
    assert_robust(response)


# -- authenticated requests with random parameters -------------------------------------------------


@fuzz(100)
@given(
    st.dictionaries(
        st.sampled_from(
            ["grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "dpop_jkt"]
        ),
        values | st.sampled_from(["authorization_code", "refresh_token", "password", "client_credentials"]),
        max_size=6,
    ),
    st.lists(st.sampled_from([RESOURCE, "https://other.example/api", ""]) | values, max_size=3),
    st.sampled_from(["none", "real_refresh", "real_access"]),
    st.booleans(),
)
def test_token_requests(
    driver: Driver,
    grant_tokens: tuple[Client, dict[str, Any]],
    form: dict[str, str],
    resources: list[str],
    which: str,
    with_dpop: bool,
) -> None:
    client, tokens = grant_tokens
    body: dict[str, Any] = dict(form)
    if which == "real_refresh":
        body.update(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    elif which == "real_access":
        body["refresh_token"] = tokens["access_token"]
    if resources:
        body["resource"] = resources
    response = driver.token_request(client, body, dpop=with_dpop)
    assert_robust(response)
    if response.status_code >= 400:
        assert response.json()["error"] in KNOWN_ERRORS, response.text


token_mutations = st.one_of(
    st.just(("same", "")),
    st.tuples(st.just("append"), st.text(B64URL + ".", min_size=1, max_size=5)),
    st.tuples(st.just("truncate"), st.text(max_size=0)),
    st.tuples(
        st.just("replace"),
        # codec="utf-8": a lone surrogate cannot be sent in a form at all (httpx fails to encode it).
        jws_lookalikes
        | st.text(st.characters(min_codepoint=0x20, exclude_characters="\x7f", codec="utf-8"), max_size=40),
    ),
)


def mutate_token(token: str, how: tuple[str, str]) -> str:
    kind, extra = how
    if kind == "append":
        return token + extra
    if kind == "truncate":
        return token[: len(token) // 2]
    if kind == "replace":
        return extra
    return token


@fuzz(100)
@given(
    st.sampled_from(["/introspect", "/revoke"]),
    st.sampled_from(["access_token", "refresh_token"]),
    token_mutations,
    st.none() | st.sampled_from(["access_token", "refresh_token", "", "x" * 100]) | values,
)
@example("/introspect", "access_token", ("replace", DEEP_HEADER), None)
@example("/revoke", "access_token", ("replace", DEEP_HEADER), None)
def test_introspection_and_revocation(
    driver: Driver,
    grant_tokens: tuple[Client, dict[str, Any]],
    path: str,
    kind: str,
    how: tuple[str, str],
    hint: str | None,
) -> None:
    client, tokens = grant_tokens
    form = {**driver.client_auth(client), "token": mutate_token(tokens[kind], how)}
    if hint is not None:
        form["token_type_hint"] = hint
    response = driver.http.post(driver.url(path), data=form)
    assert_robust(response)


# -- userinfo ---------------------------------------------------------------------------------------


@fuzz(100)
@given(
    st.sampled_from(["GET", "POST"]),
    st.sampled_from(["DPoP ", "dpop ", "Bearer ", "DPoP  ", "Basic "]),
    token_mutations,
    st.none() | proof_plans(),
    st.lists(dpop_values, max_size=2),
    st.sampled_from([b"", b"a=b", b"access_token=x", b"\xff\xfe"]),
)
@example("GET", "DPoP ", ("replace", DEEP_HEADER), None, [], b"")
@example("GET", "DPoP ", ("same", ""), ("jwk", ("alg", "中")), [], b"")
@example("GET", "DPoP ", ("same", ""), ("claims", ("iat", math.nan)), [], b"")
@example("GET", "DPoP ", ("same", ""), ("claims", ("jti", "\ud800")), [], b"")
def test_userinfo(
    driver: Driver,
    userinfo_tokens: tuple[Client, dict[str, Any]],
    method: str,
    scheme: str,
    how: tuple[str, str],
    plan: tuple[str, tuple[str, Any]] | None,
    garbage: list[bytes],
    body: bytes,
) -> None:
    """A live DPoP-bound token, mutated or not, with garbage or mutated DPoP proofs."""
    client, tokens = userinfo_tokens
    token = mutate_token(tokens["access_token"], how)
    url = driver.url("/userinfo")
    headers = [(b"Authorization", (scheme + token).strip().encode())]
    headers += [(b"DPoP", value) for value in garbage]
    if plan is not None:
        proof = mutated_proof(driver, client.dpop_key, method, url, plan, access_token=token)
        headers.append((b"DPoP", proof.encode()))
    if method == "POST":
        headers.append((b"Content-Type", FORM.encode()))
    response = driver.http.request(method, url, content=body if method == "POST" else None, headers=headers)
    assert_robust(response, json_errors=False)
    if refused_by_http_layer(response):
        return
    assert response.status_code in (200, 400, 401, 403), response.text
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith("DPoP")


# -- GET /authorize ----------------------------------------------------------------------------------

query_texts = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"), max_size=120),
    st.lists(st.tuples(names, values), max_size=8).map(urlencode),
    st.binary(max_size=30).map(lambda b: "client_id=" + quote_from_bytes(b)),
    st.sampled_from(["%", "%zz", "client_id=%ff%fe", "request_uri=%00", "&&==", "a=1;b=2"]),
    st.integers(60, 90).map(lambda n: "&".join(f"p{i}=v" for i in range(n))),
)


@fuzz(100)
@given(query_texts, st.sampled_from(["raw", "with_client", "with_request"]))
def test_authorize_queries(driver: Driver, fuzz_client: Client, query: str, mode: str) -> None:
    """Random query strings, alone or next to a real client_id and a live request_uri."""
    if mode != "raw":
        prefix = {"client_id": fuzz_client.client_id}
        if mode == "with_request":
            prefix["request_uri"] = pushed_request_uri(driver, fuzz_client)
        query = urlencode(prefix) + ("&" + query if query else "")
    response = driver.http.get(driver.url("/authorize") + "?" + query)
    assert_robust(response, json_errors=False)
    assert response.status_code in (303, 400, 404), response.text[:300]


# -- PAR with one parameter changed ----------------------------------------------------------------

PAR_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "client_assertion_type",
    "client_assertion",
    "nonce",
    "max_age",
    "acr_values",
    "prompt",
    "resource",
    "authorization_details",
    "dpop_jkt",
    "response_mode",
    "request",
    "request_uri",
    "client_secret",
)
details_values = st.one_of(
    st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["payment_initiation", "account_information", "agent_tool", "x"])},
            optional={"actions": json_values, "identifier": json_values, "amount": json_values},
        ),
        min_size=1,
        max_size=3,
    ).map(json.dumps),
    json_values.map(json.dumps),
    deep_json,
)
par_values = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "",
            " ",
            "²",
            "٣",
            "-1",
            "0",
            "9" * 12,
            "NaN",
            "null",
            "none",
            "login",
            "none login",
            "openid",
            "openid accounts payments",
            "openid\naccounts",
            "S256",
            "plain",
            "code",
            "code id_token",
            "query",
            "fragment",
            "jwt",
            "query.jwt",
            RESOURCE,
            "https://client.example.org/cb",
            "http://127.0.0.1/cb",
            "urn:ietf:params:oauth:request_uri:x",
            "A" * 43,
            "A" * 43 + "\n",
            "x" * 65,
            "x" * 9000,
        ]
    ),
    st.text(B64URL, min_size=42, max_size=44),
    details_values,
    st.integers(1000, 70_000).map(lambda n: "x" * n),
)
par_changes = st.one_of(
    st.tuples(st.sampled_from(PAR_PARAMS) | st.text(min_size=1, max_size=12), st.just(DELETE)),
    st.tuples(st.sampled_from(PAR_PARAMS) | st.text(min_size=1, max_size=12), par_values),
    st.tuples(st.sampled_from(PAR_PARAMS), st.lists(par_values, min_size=2, max_size=3)),  # repeated
)


def par_with(driver: Driver, client: Client, change: tuple[str, Any]) -> tuple[httpx.Response, Any]:
    name, value = change
    if value is DELETE:
        return driver.par(client, drop=(name,))
    return driver.par(client, extra={name: value})


def assert_par_outcome(response: httpx.Response) -> None:
    assert_robust(response)
    assert response.status_code == 201 or 400 <= response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"] in KNOWN_ERRORS, response.text


@fuzz(100)
@given(par_changes)
@example(("authorization_details", "[" * 5000))
def test_par_with_one_parameter_changed(driver: Driver, fuzz_client: Client, change: tuple[str, Any]) -> None:
    response, _ = par_with(driver, fuzz_client, change)
    assert_par_outcome(response)


@fuzz(40)
@given(
    st.tuples(
        st.sampled_from(
            [
                "max_age",
                "authorization_details",
                "state",
                "nonce",
                "acr_values",
                "prompt",
                "scope",
                "resource",
                "response_mode",
            ]
        ),
        par_values,
    )
)
@example(("max_age", "²"))
@example(("response_mode", "jwt"))
@example(("authorization_details", '[{"type":"payment_initiation","amount":NaN}]'))
@example(("authorization_details", '[{"type":"payment_initiation","amount":1e999}]'))
@example(("authorization_details", '[{"type":"payment_initiation","note":"\\ud800"}]'))
def test_accepted_par_survives_the_flow(
    driver: Driver, fuzz_client: Client, fuzz_user: str, change: tuple[str, Any]
) -> None:
    """What PAR accepts must not break the authorization or the token step later."""
    response, flow = par_with(driver, fuzz_client, change)
    assert_par_outcome(response)
    if response.status_code != 201:
        return
    browser = driver.browser()
    try:
        final = driver.authorize(fuzz_client, flow, browser, username=fuzz_user)
    finally:
        browser.http.close()
    assert_robust(final, json_errors=False)
    if flow.code:
        assert_robust(driver.redeem(fuzz_client, flow))


# -- identifiers and nesting depths (issue 13 B5, B8) ------------------------------------------------

#: Identifier shapes that broke the store (PostgreSQL refuses over-long values and NUL) or would
#: forge a log line: long (10 kB), control characters, NUL, Unicode, bidirectional formatting.
odd_identifiers = st.one_of(
    st.sampled_from(
        [
            "c" * 256,
            "c" * 10_240,
            "\x00",
            "c\x00",
            "c\nrefused POST /payments",
            "c\r\n",
            "\x1b[31mred",
            "c\u202eA",
            "c\u2066",
            "c\u200f",
            "c\x85",
            "c\x7f",
            "\uff43",
            "\U0001f600",
            " ",
        ]
    ),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
    st.integers(256, 10_240).map(lambda n: "x" * n),
)


@fuzz(60)
@given(st.sampled_from(FORM_ENDPOINTS), odd_identifiers, st.sampled_from(["form", "iss", "kid", "jti"]))
@example("/par", "c" * 10_240, "form")
@example("/token", "c\x00", "iss")
@example("/par", "c" * 10_240, "kid")
@example("/introspect", "c\u202e", "jti")
def test_odd_client_identifiers(
    driver: Driver, fuzz_client: Client, path: str, value: str, where: str
) -> None:
    """Issue 13 B8: a client_id in the form, an assertion iss, kid or jti of any shape: never a 5xx;
    a malformed client_id, iss or kid is invalid_client."""
    if where == "form":
        form = {"client_id": value, "token": "t", "grant_type": "refresh_token", "refresh_token": "r"}
    else:
        header = {"alg": fuzz_client.key.alg, "typ": "JWT", "kid": fuzz_client.key.kid}
        now = int(driver.now())
        claims: dict[str, Any] = {
            "iss": fuzz_client.client_id,
            "sub": fuzz_client.client_id,
            "aud": driver.issuer,
            "jti": new_secret_token(),
            "iat": now,
            "exp": now + 60,
        }
        if where == "kid":
            header["kid"] = value
        else:
            claims[where] = value
        form = {
            "client_assertion_type": JWT_BEARER,
            "client_assertion": sign_json(fuzz_client.key, header, claims),
            "token": "t",
            "grant_type": "refresh_token",
            "refresh_token": "r",
        }
    response = driver.http.post(driver.url(path), data=form)
    assert_robust(response)
    if where in ("form", "iss") and (len(value) > 255 or not value.isascii() or not value.isprintable()):
        assert response.status_code == 401 and response.json()["error"] == "invalid_client", response.text


@fuzz(60)
@given(odd_identifiers, st.sampled_from(["client_id", "request_uri", "username"]))
@example("c" * 10_240, "client_id")
@example("c\x00", "client_id")
@example("\x00", "username")
@example("u" * 10_240, "username")
@example("c\n\x1b[2J", "request_uri")
def test_odd_front_channel_identifiers(
    driver: Driver, fuzz_client: Client, fuzz_user: str, value: str, name: str
) -> None:
    """Issue 13 B8: /authorize with an odd client_id or request_uri, the login form with an odd
    user name: the safe error page (400), or the login page again; never a 5xx."""
    request_uri = pushed_request_uri(driver, fuzz_client)
    query = {"client_id": fuzz_client.client_id, "request_uri": request_uri}
    if name != "username":
        query[name] = value
        response = driver.http.get(driver.url("/authorize"), params=query)
        assert_robust(response, json_errors=False)
        assert response.status_code == 400, response.text[:300]
        return
    browser = driver.browser()
    try:
        _, flow = driver.par(fuzz_client)
        page = browser.get(
            driver.url("/authorize"),
            params={"client_id": fuzz_client.client_id, "request_uri": flow.request_uri},
        )
        assert page.status_code == 200, page.text[:300]
        answer = browser.submit(page, {"username": value, "password": "wrong"})
    finally:
        browser.http.close()
    assert_robust(answer, json_errors=False)
    if answer.status_code == 429:  # issue 13 C1: this source has failed 20 times: it waits now
        assert "Too many failed sign-ins" in answer.text and int(answer.headers["retry-after"]) >= 1
        return
    assert answer.status_code == 400 and "Wrong user name or password" in answer.text, answer.text[:300]


#: authorization_details nested from a little to absurdly deep (the limit is 32 levels; 10,000
#: levels still fit the 64 KiB form body once URL-encoded).
deep_details = st.integers(1, 10_000).map(
    lambda levels: '[{"type":"payment_initiation","x":' + "[" * levels + "]" * levels + "}]"
)


@fuzz(40)
@given(deep_details)
@example('[{"type":"payment_initiation","x":' + "[" * 31 + "]" * 31 + "}]")
@example('[{"type":"payment_initiation","x":' + "[" * 491 + "]" * 491 + "}]")
@example('[{"type":"payment_initiation","x":' + "[" * 492 + "]" * 492 + "}]")
@example('[{"type":"payment_initiation","x":' + "[" * 9_998 + "]" * 9_998 + "}]")
def test_deep_authorization_details_store_nothing(driver: Driver, fuzz_client: Client, details: str) -> None:
    """Issue 13 B5: any depth gives invalid_authorization_details (too deep, or the schema), never
    a 5xx, and a refused request stores no pushed request."""
    from sqlalchemy import func, select

    from corridor.store import schema

    def pushed() -> int:
        with driver.as_.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(schema.pushed_requests)).scalar_one())

    before = pushed()
    response, _ = driver.par(fuzz_client, extra={"authorization_details": details})
    assert_robust(response)
    assert response.status_code == 400 and response.json()["error"] == "invalid_authorization_details"
    assert pushed() == before
