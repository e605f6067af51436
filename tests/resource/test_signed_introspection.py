"""The resource server asks for and verifies signed introspection responses (RFC 9701, FAPI 2.0
Message Signing 5.5.2): against a real Corridor AS, and against a hostile AS over TLS that answers
introspection with a body of the test's choosing (bad signature, wrong iss/aud/typ, stale iat, an
alg outside the allow-list, an unsigned answer). Every refusal: 401 invalid_token, with the
description and rule asserted; the issuer's keys out of reach: 503."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import OctKey, RSAKey

from corridor.core.clock import MovableClock
from corridor.core.jose import SigningKey
from corridor.core.randomness import token_hash
from corridor.core.rules import Rule
from corridor.resource.guard import ResourceGuard, ResourceSettings
from corridor.resource.tokens import ResourceError
from corridor.resource.verifiers import Audience, Introspection
from corridor.transport.tls import DevTLS
from tests.hostile import enc, sign_json
from tests.pki import TestPKI
from tests.resource.api import PUBLIC_URL, running_api
from tests.resource.test_guard import challenge, dpop_call
from tests.stubserver import Seen, stub_server
from tests.support import Client, Driver, RunningAS

RS_ID = "https://signed-introspection.example.org/api"
RS_CLIENT = "rs-introspection-client"
JWT_TYPE = "application/token-introspection+jwt"


def guard_for(
    issuer: str, tls: DevTLS, client_id: str, key: SigningKey, clock: MovableClock, *, signed: bool = True
) -> ResourceGuard:
    settings = ResourceSettings(
        resource=RS_ID,
        authorization_servers=(issuer,),
        public_url=PUBLIC_URL,
        ca_file=str(tls.ca_file),
        introspection=Introspection(client_id=client_id, key=key, signed=signed),
    )
    return ResourceGuard(settings, clock=clock)


def refused(guard: ResourceGuard, token: str = "opaque-token") -> ResourceError:
    with pytest.raises(ResourceError) as caught:
        guard.verify_token(token)
    return caught.value


# -- against Corridor ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registered(as_server: RunningAS) -> tuple[Client, Client, str]:
    """The RS's introspection client (registered for RS_ID), a client and its token for RS_ID."""
    driver = Driver(as_server)
    rs_client = driver.add_client()
    as_server.store.clients.add_resource_server(RS_ID, "Signed RS", ["accounts"], rs_client.client_id, 0.0)
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"scope": "accounts", "resource": RS_ID})
    return rs_client, client, tokens["access_token"]


def introspection_records(as_server: RunningAS, rs_client: Client) -> list[dict[str, Any]]:
    return [
        json.loads(r["detail"] or "{}")
        for r in as_server.store.audit.records()
        if r["event"] == "introspection" and r["client_id"] == rs_client.client_id
    ]


def test_corridor_signed_answer_is_accepted(
    as_server: RunningAS, tls: DevTLS, registered: tuple[Client, Client, str]
) -> None:
    """FMS 5.5.2: the RS asks for the JWT (the AS's record names the answer it signed) and
    reads the token from its verified token_introspection."""
    rs_client, client, token = registered
    guard = guard_for(as_server.issuer, tls, rs_client.client_id, rs_client.key, as_server.clock)
    access = guard.verify_token(token)
    assert access.client_id == client.client_id and access.issuer == as_server.issuer
    assert access.thumbprint == client.dpop_key.thumbprint() and "accounts" in access.scopes
    signed_response = introspection_records(as_server, rs_client)[-1]["signed_response"]
    assert signed_response["kid"] == as_server.server.keys.signing.kid  # type: ignore[union-attr]
    # Both sides name the same signed answer; the AS keeps it, the token carries it for the API.
    assert access.signed_introspection is not None
    assert access.signed_introspection["sha256"] == signed_response["sha256"]
    kept = as_server.store.messages.get(signed_response["sha256"])
    assert kept is not None and kept["jws"] == access.signed_introspection["jws"]


def test_corridor_signed_answer_through_the_api(
    as_server: RunningAS, tls: DevTLS, pki: TestPKI, registered: tuple[Client, Client, str]
) -> None:
    """The same through the protected API over HTTPS: 200; a revoked token is refused at once,
    the signed answer saying active false (401 invalid_token, RFC 7662 2.2)."""
    rs_client, client, _ = registered
    driver = Driver(as_server)
    _, tokens = driver.full_flow(client, extra={"scope": "accounts", "resource": RS_ID})
    settings = ResourceSettings(
        resource=RS_ID,
        authorization_servers=(as_server.issuer,),
        public_url=PUBLIC_URL,
        ca_file=str(tls.ca_file),
        introspection=Introspection(client_id=rs_client.client_id, key=rs_client.key, signed=True),
    )
    with running_api(settings, tls, pki.ca_file, clock=as_server.clock) as api:
        issued = (client, tokens["access_token"], "")
        assert dpop_call(api, issued).status_code == 200
        # The decision record names the signed answer it was allowed on, by hash: no JWT in it.
        named = json.loads(api.guard.decisions[-1]["detail"])["signed_introspection"]
        assert set(named) == {"sha256", "kid", "alg"}
        assert named["sha256"] == introspection_records(as_server, rs_client)[-1]["signed_response"]["sha256"]
        driver.http.post(
            driver.url("/revoke"), data={**driver.client_auth(client), "token": tokens["refresh_token"]}
        )
        value = challenge(dpop_call(api, issued), "invalid_token")
        assert 'error_description="the access token is not active"' in value
        assert api.guard.decisions[-1]["rule"] == Rule.RFC_7662_2_2
    assert "signed_response" in introspection_records(as_server, rs_client)[-1]


def test_unsigned_mode_still_gets_json_from_corridor(
    as_server: RunningAS, tls: DevTLS, registered: tuple[Client, Client, str]
) -> None:
    """Without ``signed`` the RS asks for JSON, and the AS signs nothing."""
    rs_client, client, token = registered
    guard = guard_for(
        as_server.issuer, tls, rs_client.client_id, rs_client.key, as_server.clock, signed=False
    )
    assert guard.verify_token(token).client_id == client.client_id
    assert "signed_response" not in introspection_records(as_server, rs_client)[-1]


# -- against a hostile AS ---------------------------------------------------------------------------


@dataclass
class HostileAS:
    """An AS over TLS whose introspection answer is ``answer()``: (content type, body)."""

    url: str
    key: SigningKey
    clock: MovableClock
    seen: list[Seen]
    answer: Callable[[], tuple[str, bytes]] = field(default=lambda: ("application/json", b"{}"))
    jwks_status: int = 200

    def token_introspection(self, **changes: Any) -> dict[str, Any]:
        now = int(self.clock.now())
        body = {
            "active": True,
            "iss": self.url,
            "sub": "user-1",
            "client_id": "client-1",
            "jti": "at-1",
            "aud": RS_ID,
            "scope": "accounts",
            "iat": now,
            "exp": now + 300,
            "cnf": {"jkt": "a" * 43},
            "token_type": "DPoP",
        }
        body.update(changes)
        return body

    def claims(self, **changes: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": RS_CLIENT,
            "iat": int(self.clock.now()),
            "token_introspection": self.token_introspection(),
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not DROP}

    def header(self, **changes: Any) -> dict[str, Any]:
        header = {"alg": self.key.alg, "typ": "token-introspection+jwt", "kid": self.key.kid, **changes}
        return {k: v for k, v in header.items() if v is not DROP}

    def signed(self, claims: dict[str, Any] | None = None, header: dict[str, Any] | None = None) -> None:
        """Answer with a JWT correctly signed by the published key, each time made afresh."""
        self.answer = lambda: (
            JWT_TYPE,
            sign_json(self.key, header or self.header(), claims or self.claims()).encode(),
        )

    def raw(self, content_type: str, body: str) -> None:
        self.answer = lambda: (content_type, body.encode())


DROP = object()


@pytest.fixture
def hostile(tls: DevTLS) -> Iterator[HostileAS]:
    seen: list[Seen] = []
    state: dict[str, HostileAS] = {}

    def answer(path: str) -> tuple[int, str, bytes]:
        stub = state["stub"]
        if path.startswith("/.well-known/oauth-authorization-server"):
            metadata = {
                "issuer": stub.url,
                "jwks_uri": stub.url + "/jwks",
                "introspection_endpoint": stub.url + "/introspect",
            }
            return 200, "application/json", json.dumps(metadata).encode()
        if path == "/jwks" and stub.jwks_status != 200:
            return stub.jwks_status, "text/plain", b"unavailable"
        if path == "/jwks":
            return 200, "application/json", json.dumps({"keys": [stub.key.public_jwk]}).encode()
        if path == "/introspect":
            content_type, body = stub.answer()
            return 200, content_type, body
        return 404, "text/plain", b"not found"

    with stub_server(answer, tls=(tls.cert_file, tls.key_file), seen=seen) as url:
        state["stub"] = HostileAS(url, SigningKey.generate("ES256"), MovableClock(), seen)
        yield state["stub"]


def hostile_guard(stub: HostileAS, tls: DevTLS, *, signed: bool = True) -> ResourceGuard:
    return guard_for(stub.url, tls, RS_CLIENT, SigningKey.generate("ES256"), stub.clock, signed=signed)


def test_a_good_signed_answer_is_accepted_and_was_asked_for(hostile: HostileAS, tls: DevTLS) -> None:
    """Positive control for every hostile answer below: the stub's well-formed JWT is accepted,
    and the RS asked for it (RFC 9701 4: Accept application/token-introspection+jwt)."""
    hostile.signed()
    access = hostile_guard(hostile, tls).verify_token("opaque-token")
    assert (access.issuer, access.client_id, access.jti) == (hostile.url, "client-1", "at-1")
    (introspect,) = [s for s in hostile.seen if s.path == "/introspect"]
    assert introspect.method == "POST" and introspect.headers["accept"] == JWT_TYPE
    assert b"token=opaque-token" in introspect.body


@pytest.mark.parametrize(
    "variant",
    [
        {"typ": "application/token-introspection+jwt"},
        {"typ": "Token-Introspection+JWT"},  # media types compare case-insensitively (RFC 7515 4.1.9)
        {"aud": [RS_CLIENT, "someone-else"]},
        {"iat_age": 69},  # signed_max_age 60 + clock skew 10 (iat is whole seconds)
        {"iat_age": -10},  # clock skew
        {"content_type": "Application/Token-Introspection+JWT; charset=utf-8"},
    ],
)
def test_tolerated_variants(hostile: HostileAS, tls: DevTLS, variant: dict[str, Any]) -> None:
    """The edges that are still valid: typ spellings, aud arrays, iat at the window's ends."""
    header = hostile.header(typ=variant.get("typ", "token-introspection+jwt"))
    content_type = variant.get("content_type", JWT_TYPE)

    def answer() -> tuple[str, bytes]:
        iat = int(hostile.clock.now()) - variant.get("iat_age", 0)
        claims = hostile.claims(aud=variant.get("aud", RS_CLIENT), iat=iat)
        return content_type, sign_json(hostile.key, header, claims).encode()

    hostile.answer = answer
    assert hostile_guard(hostile, tls).verify_token("opaque-token").client_id == "client-1"


def _rs256(stub: HostileAS) -> str:
    key = RSAKey.generate_key(2048)
    header = stub.header(alg="RS256")
    return jws.serialize_compact(header, json.dumps(stub.claims()), key, algorithms=["RS256"])


def _hs256(stub: HostileAS) -> str:
    """HS256 keyed with the published public key: the classic confusion."""
    secret = OctKey.import_key(json.dumps(stub.key.public_jwk).encode())
    return jws.serialize_compact(
        stub.header(alg="HS256"), json.dumps(stub.claims()), secret, algorithms=["HS256"]
    )


def _none(stub: HostileAS) -> str:
    return f"{enc(stub.header(alg='none'))}.{enc(stub.claims())}."


def _other_key(stub: HostileAS) -> str:
    """Signed by a key the AS does not publish, under the published key's kid."""
    return sign_json(SigningKey.generate("ES256"), stub.header(), stub.claims())


def _tampered(stub: HostileAS) -> str:
    """A good signature over other claims: the payload swapped after signing."""
    good = sign_json(stub.key, stub.header(), stub.claims()).split(".")
    other = enc(stub.claims(token_introspection=stub.token_introspection(sub="someone-else")))
    return ".".join([good[0], other, good[2]])


HOSTILE: list[tuple[str, Callable[[HostileAS], str], str, str]] = [
    (
        "signed by another key",
        _other_key,
        "the introspection response signature is not valid",
        Rule.RFC_9701_5,
    ),
    ("payload swapped", _tampered, "the introspection response signature is not valid", Rule.RFC_9701_5),
    (
        "wrong iss",
        lambda s: sign_json(s.key, s.header(), s.claims(iss="https://evil.example.org")),
        "the introspection response comes from another issuer",
        Rule.RFC_9701_5,
    ),
    (
        "no iss",
        lambda s: sign_json(s.key, s.header(), s.claims(iss=DROP)),
        "the introspection response comes from another issuer",
        Rule.RFC_9701_5,
    ),
    (
        "wrong aud",
        lambda s: sign_json(s.key, s.header(), s.claims(aud="another-rs")),
        "the introspection response is meant for another client",
        Rule.RFC_9701_5,
    ),
    (
        "no aud",
        lambda s: sign_json(s.key, s.header(), s.claims(aud=DROP)),
        "the introspection response is meant for another client",
        Rule.RFC_9701_5,
    ),
    (
        "stale iat",
        lambda s: sign_json(s.key, s.header(), s.claims(iat=int(s.clock.now()) - 71)),
        "the introspection response is too old",
        Rule.RFC_9701_5,
    ),
    (
        "iat in the future",
        lambda s: sign_json(s.key, s.header(), s.claims(iat=int(s.clock.now()) + 11)),
        "the introspection response iat is not valid",
        Rule.RFC_9701_5,
    ),
    (
        "no iat",
        lambda s: sign_json(s.key, s.header(), s.claims(iat=DROP)),
        "the introspection response iat is not valid",
        Rule.RFC_9701_5,
    ),
    (
        "typ JWT",
        lambda s: sign_json(s.key, s.header(typ="JWT"), s.claims()),
        "the introspection response typ must be token-introspection+jwt",
        Rule.RFC_9701_5,
    ),
    (
        "typ at+jwt",
        lambda s: sign_json(s.key, s.header(typ="at+jwt"), s.claims()),
        "the introspection response typ must be token-introspection+jwt",
        Rule.RFC_9701_5,
    ),
    (
        "no typ",
        lambda s: sign_json(s.key, s.header(typ=DROP), s.claims()),
        "the introspection response typ must be token-introspection+jwt",
        Rule.RFC_9701_5,
    ),
    ("alg RS256", _rs256, "the introspection response alg is not allowed", Rule.FAPI2_5_4_1),
    ("alg HS256", _hs256, "the introspection response alg is not allowed", Rule.FAPI2_5_4_1),
    ("alg none", _none, "the introspection response alg is not allowed", Rule.FAPI2_5_4_1),
    (
        "no token_introspection",
        lambda s: sign_json(s.key, s.header(), s.claims(token_introspection=DROP)),
        "the introspection response has no token_introspection",
        Rule.RFC_9701_5,
    ),
    (
        "token_introspection without a boolean active",
        lambda s: sign_json(
            s.key, s.header(), s.claims(token_introspection=s.token_introspection(active="true"))
        ),
        "the introspection response has no token_introspection",
        Rule.RFC_9701_5,
    ),
    (
        "not a JWS",
        lambda s: json.dumps(s.claims()),
        "the introspection response is not a JWS",
        Rule.RFC_9701_5,
    ),
    (
        "signed, but active false",
        lambda s: sign_json(
            s.key, s.header(), s.claims(token_introspection={"active": False, "sub": "user-1"})
        ),
        "the access token is not active",
        Rule.RFC_7662_2_2,
    ),
]


@pytest.mark.parametrize(
    ("forge", "description", "rule"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_signed_answers_are_refused(
    hostile: HostileAS, tls: DevTLS, forge: Callable[[HostileAS], str], description: str, rule: str
) -> None:
    """RFC 9701 5, FAPI2 5.4.1: each forged answer leaves the token unverified: 401 invalid_token."""
    hostile.answer = lambda: (JWT_TYPE, forge(hostile).encode())
    error = refused(hostile_guard(hostile, tls))
    assert (error.status, error.error, error.description, error.rule) == (
        401,
        "invalid_token",
        description,
        rule,
    )


def test_an_unsigned_answer_is_refused_when_signing_is_required(hostile: HostileAS, tls: DevTLS) -> None:
    """FMS 5.5.2: the RS asked for a JWT; a plain JSON answer, however active, is refused. The
    positive control: the same answer is accepted by an RS that does not require signing (and
    that asked for JSON)."""
    hostile.raw("application/json", json.dumps(hostile.token_introspection()))
    error = refused(hostile_guard(hostile, tls))
    assert (error.status, error.error, error.description, error.rule) == (
        401,
        "invalid_token",
        "the introspection response is not signed",
        Rule.FAPI2_MS_5_5_2,
    )
    assert hostile_guard(hostile, tls, signed=False).verify_token("opaque-token").jti == "at-1"
    assert [s.headers["accept"] for s in hostile.seen if s.path == "/introspect"] == [
        JWT_TYPE,
        "application/json",
    ]


@pytest.mark.parametrize("signed", [True, False])
def test_an_answer_without_jti_names_the_token_by_its_hash(
    hostile: HostileAS, tls: DevTLS, signed: bool
) -> None:
    """RFC 7662 2.2: jti is optional in an introspection answer (oidc-provider omits it for opaque
    tokens): the token is accepted, named by its SHA-256 (never by itself), and the claims say
    only what the AS said. A jti that is there but not a string is still refused; a JWT access
    token must carry its own (RFC 9068 2.2)."""
    answer = {k: v for k, v in hostile.token_introspection().items() if k != "jti"}
    if signed:
        hostile.signed(hostile.claims(token_introspection=answer))
    else:
        hostile.raw("application/json", json.dumps(answer))
    access = hostile_guard(hostile, tls, signed=signed).verify_token("opaque-token")
    assert access.jti == token_hash("opaque-token") and "jti" not in access.claims
    assert (access.client_id, access.subject) == ("client-1", "user-1")

    odd = {**answer, "jti": 5}
    if signed:
        hostile.signed(hostile.claims(token_introspection=odd))
    else:
        hostile.raw("application/json", json.dumps(odd))
    error = refused(hostile_guard(hostile, tls, signed=signed))
    assert (error.status, error.error, error.description, error.rule) == (
        401,
        "invalid_token",
        "the access token has no jti",
        Rule.RFC_9068_2_2,
    )
    with pytest.raises(ResourceError) as local:
        Audience(RS_ID, 10).accept(answer, hostile.url, hostile.clock.now())
    assert local.value.description == "the access token has no jti"


def test_a_cached_answer_keeps_its_signature(hostile: HostileAS, tls: DevTLS) -> None:
    """With ``cache_seconds`` the verified answer is reused, and so is what names its JWS."""
    hostile.signed()
    settings = ResourceSettings(
        resource=RS_ID,
        authorization_servers=(hostile.url,),
        public_url=PUBLIC_URL,
        ca_file=str(tls.ca_file),
        introspection=Introspection(
            client_id=RS_CLIENT, key=SigningKey.generate("ES256"), signed=True, cache_seconds=30
        ),
    )
    guard = ResourceGuard(settings, clock=hostile.clock)
    first, second = guard.verify_token("opaque-token"), guard.verify_token("opaque-token")
    assert (
        first.signed_introspection is not None and first.signed_introspection == second.signed_introspection
    )
    assert len([s for s in hostile.seen if s.path == "/introspect"]) == 1


def test_a_jwt_labelled_as_json_is_refused(hostile: HostileAS, tls: DevTLS) -> None:
    """The media type decides (RFC 9701 5): a signed JWT sent as application/json is unsigned."""
    hostile.answer = lambda: (
        "application/json",
        sign_json(hostile.key, hostile.header(), hostile.claims()).encode(),
    )
    assert refused(hostile_guard(hostile, tls)).description == "the introspection response is not signed"


def test_unreachable_keys_are_503(hostile: HostileAS, tls: DevTLS) -> None:
    """The AS's JWKS cannot be fetched: the token cannot be checked now (503, as when the AS
    itself is unreachable), not declared invalid."""
    hostile.signed()
    hostile.jwks_status = 500
    error = refused(hostile_guard(hostile, tls))
    assert (error.status, error.error, error.description, error.rule) == (
        503,
        "invalid_token",
        "the token cannot be checked now",
        Rule.RFC_7662_2,
    )


def test_a_hostile_answer_through_the_api(hostile: HostileAS, tls: DevTLS, pki: TestPKI) -> None:
    """Over HTTPS at the API: a forged aud is a DPoP invalid_token challenge naming the check,
    and the decision record cites RFC 9701 5; the well-formed answer passes (same client, same
    proof)."""
    client = Client("client-1", SigningKey.generate("ES256"), SigningKey.generate("ES256"), "")
    settings = ResourceSettings(
        resource=RS_ID,
        authorization_servers=(hostile.url,),
        public_url=PUBLIC_URL,
        ca_file=str(tls.ca_file),
        introspection=Introspection(client_id=RS_CLIENT, key=SigningKey.generate("ES256"), signed=True),
    )
    answer = hostile.token_introspection(cnf={"jkt": client.dpop_key.thumbprint()})
    with running_api(settings, tls, pki.ca_file, clock=hostile.clock) as api:
        hostile.signed(hostile.claims(token_introspection=answer, aud="another-rs"))
        value = challenge(dpop_call(api, (client, "opaque-token", "")), "invalid_token")
        assert 'error_description="the introspection response is meant for another client"' in value
        assert api.guard.decisions[-1]["rule"] == Rule.RFC_9701_5
        hostile.signed(hostile.claims(token_introspection=answer))
        assert dpop_call(api, (client, "opaque-token", "")).status_code == 200
