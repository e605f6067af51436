"""corridor.resource through real HTTPS: rows R1-R8, the RS-side DPoP checks (D1-D14), M5,
RFC 9470 step-up and RFC 9728 metadata, with tokens from the test AS."""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from corridor.core.b64 import b64url_encode
from corridor.core.dpop import make_proof
from corridor.core.jose import SigningKey
from tests.pki import TestPKI
from tests.resource.api import PUBLIC_URL, RunningRS
from tests.support import RESOURCE, Client, Driver, RunningAS, decode_jwt
from tests.tlsprobe import OLD_SUITES, handshake, permissive_server

PAYMENT = [
    {
        "type": "payment_initiation",
        "instructedAmount": {"currency": "EUR", "amount": "100.00"},
        "creditorName": "Merchant A",
    }
]
ALGS = 'algs="PS256 ES256 EdDSA"'


@pytest.fixture(scope="module")
def issued(as_server: RunningAS) -> tuple[Client, str, str]:
    """A DPoP-bound token for the API (aud = RESOURCE) with accounts + payments and a payment grant."""
    driver = Driver(as_server)
    client = driver.add_client()
    _, tokens = driver.full_flow(
        client,
        extra={
            "scope": "openid accounts payments",
            "resource": RESOURCE,
            "authorization_details": json.dumps(PAYMENT),
        },
    )
    return client, tokens["access_token"], tokens["refresh_token"]


def proof(
    rs: RunningRS,
    client: Client,
    method: str,
    path: str,
    token: str,
    *,
    nonce: str | None = "rs",
    key: SigningKey | None = None,
    url: str | None = None,
    **kwargs: Any,
) -> str:
    return make_proof(
        key or client.dpop_key,
        method,
        url or PUBLIC_URL + path,
        nonce=rs.guard.nonces.current() if nonce == "rs" else nonce,
        access_token=token,
        iat=kwargs.pop("iat", rs.guard.clock.now()),
        **kwargs,
    )


def call(
    rs: RunningRS,
    method: str,
    path: str,
    headers: list[tuple[str, str]] | dict[str, str],
    *,
    http: httpx.Client | None = None,
    **kwargs: Any,
) -> httpx.Response:
    client = http or httpx.Client(
        verify=ssl.create_default_context(cafile=rs.guard.settings.ca_file), timeout=20
    )
    with client:
        return client.request(method, rs.url + path, headers=headers, **kwargs)


def dpop_call(
    rs: RunningRS,
    issued: tuple[Client, str, str],
    path: str = "/accounts",
    method: str = "GET",
    json: Any = None,
    **proof_args: Any,
) -> httpx.Response:
    client, token, _ = issued
    return call(
        rs,
        method,
        path,
        {"Authorization": f"DPoP {token}", "DPoP": proof(rs, client, method, path, token, **proof_args)},
        json=json,
    )


def challenge(response: httpx.Response, error: str, scheme: str = "DPoP", status: int = 401) -> str:
    assert response.status_code == status, response.text
    value = response.headers["www-authenticate"]
    assert value.startswith(f'{scheme} error="{error}"'), value
    assert f'resource_metadata="{PUBLIC_URL}/.well-known/oauth-protected-resource"' in value
    if scheme == "DPoP":
        assert ALGS in value
    return value


# -- R2, R3: where the token is ---------------------------------------------------------------------


def test_valid_dpop_call(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    """R2: a DPoP-bound token with its proof."""
    response = dpop_call(rs, issued)
    assert response.status_code == 200, response.text
    assert response.json()["client"] == issued[0].client_id


def test_scheme_is_case_insensitive(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    client, token, _ = issued
    response = call(
        rs,
        "GET",
        "/accounts",
        {"Authorization": f"dpop {token}", "DPoP": proof(rs, client, "GET", "/accounts", token)},
    )
    assert response.status_code == 200


def test_no_credentials(rs: RunningRS) -> None:
    """RFC 6750 3: a bare challenge per scheme, naming the RFC 9728 metadata."""
    response = call(rs, "GET", "/accounts", {})
    assert response.status_code == 401
    values = response.headers.get_list("www-authenticate")
    assert values == [
        f'DPoP {ALGS}, resource_metadata="{PUBLIC_URL}/.well-known/oauth-protected-resource"',
        f'Bearer resource_metadata="{PUBLIC_URL}/.well-known/oauth-protected-resource"',
    ]


def test_token_in_query_is_refused(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    """R3 / FAPI2 5.3.4-2."""
    response = call(rs, "GET", "/accounts", {}, params={"access_token": issued[1]})
    challenge(response, "invalid_request")


def test_token_in_form_body_is_refused(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    """R3 (conv.): RFC 6750 2.2 form-body tokens are refused too."""
    response = call(rs, "POST", "/payments", {}, data={"access_token": issued[1]})
    challenge(response, "invalid_request")


def test_two_authorization_headers_are_a_malformed_request(
    rs: RunningRS, issued: tuple[Client, str, str]
) -> None:
    """RFC 6750 2.1, 3.1 / RFC 9449 7.1: 400 invalid_request, as at UserInfo."""
    client, token, _ = issued
    headers = [
        ("Authorization", f"DPoP {token}"),
        ("Authorization", f"DPoP {token}"),
        ("DPoP", proof(rs, client, "GET", "/accounts", token)),
    ]
    challenge(call(rs, "GET", "/accounts", headers), "invalid_request", status=400)


# -- R4: validity ---------------------------------------------------------------------------------------


def test_tampered_token(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    client, token, _ = issued
    head, body, sig = token.split(".")
    claims = json.loads(__import__("corridor.core.b64", fromlist=["x"]).b64url_decode(body))
    claims["scope"] = "accounts payments admin"
    forged = f"{head}.{b64url_encode(json.dumps(claims).encode())}.{sig}"
    response = call(
        rs,
        "GET",
        "/accounts",
        {"Authorization": f"DPoP {forged}", "DPoP": proof(rs, client, "GET", "/accounts", forged)},
    )
    challenge(response, "invalid_token")


def test_expired_token(rs: RunningRS, issued: tuple[Client, str, str], driver: Driver) -> None:
    driver.as_.clock.advance(301)
    challenge(dpop_call(rs, issued), "invalid_token")


def test_id_token_is_not_an_access_token(rs: RunningRS, as_server: RunningAS) -> None:
    """K1 / RFC 9068 4: typ must be at+jwt."""
    driver = Driver(as_server)
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"resource": RESOURCE})
    response = call(
        rs,
        "GET",
        "/accounts",
        {
            "Authorization": f"DPoP {tokens['id_token']}",
            "DPoP": proof(rs, client, "GET", "/accounts", tokens["id_token"]),
        },
    )
    challenge(response, "invalid_token")


def test_token_for_another_audience(rs: RunningRS, as_server: RunningAS) -> None:
    driver = Driver(as_server)
    client = driver.add_client()
    _, tokens = driver.full_flow(client)  # aud = the AS itself
    response = call(
        rs,
        "GET",
        "/accounts",
        {
            "Authorization": f"DPoP {tokens['access_token']}",
            "DPoP": proof(rs, client, "GET", "/accounts", tokens["access_token"]),
        },
    )
    challenge(response, "invalid_token")


def test_token_from_another_issuer(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    """R8: a token signed by someone else, claiming our AS or another issuer."""
    client, token, _ = issued
    _, claims = decode_jwt(token)
    stranger = SigningKey.generate("ES256")
    for iss in (claims["iss"], "https://evil.example"):
        forged = stranger.sign({**claims, "iss": iss}, "at+jwt")
        response = call(
            rs,
            "GET",
            "/accounts",
            {"Authorization": f"DPoP {forged}", "DPoP": proof(rs, client, "GET", "/accounts", forged)},
        )
        challenge(response, "invalid_token")


# -- R5: coverage, and RFC 9470 step-up --------------------------------------------------------------


def test_insufficient_scope(rs: RunningRS, as_server: RunningAS) -> None:
    driver = Driver(as_server)
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"scope": "accounts", "resource": RESOURCE})
    token = tokens["access_token"]
    response = call(
        rs,
        "POST",
        "/payments",
        {"Authorization": f"DPoP {token}", "DPoP": proof(rs, client, "POST", "/payments", token)},
        json={"amount": "1.00", "currency": "EUR"},
    )
    value = challenge(response, "insufficient_scope", status=403)
    assert 'scope="payments"' in value


def test_payment_inside_and_beyond_the_granted_amount(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    client, token, _ = issued

    def pay(amount: str) -> httpx.Response:
        return call(
            rs,
            "POST",
            "/payments",
            {"Authorization": f"DPoP {token}", "DPoP": proof(rs, client, "POST", "/payments", token)},
            json={"amount": amount, "currency": "EUR"},
        )

    assert pay("99.99").status_code == 201
    challenge(pay("100.01"), "insufficient_scope", status=403)


def test_step_up_required(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    """RFC 9470 3: acr "password" where the route needs "mfa"."""
    value = challenge(dpop_call(rs, issued, path="/admin"), "insufficient_user_authentication")
    assert 'acr_values="mfa"' in value


# -- R6 / D1-D14: the DPoP binding ---------------------------------------------------------------------


def raw(header: dict[str, Any], claims: dict[str, Any], key: Any, alg: str) -> str:
    return jws.serialize_compact(header, json.dumps(claims), key, algorithms=[alg])


def base_claims(rs: RunningRS, token: str, **over: Any) -> dict[str, Any]:
    from corridor.core.dpop import access_token_hash

    claims = {
        "jti": b64url_encode(__import__("os").urandom(16)),
        "htm": "GET",
        "htu": PUBLIC_URL + "/accounts",
        "iat": int(rs.guard.clock.now()),
        "nonce": rs.guard.nonces.current(),
        "ath": access_token_hash(token),
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def with_proof(rs: RunningRS, token: str, value: str | None, scheme: str = "DPoP") -> httpx.Response:
    headers = [("Authorization", f"{scheme} {token}")]
    if value is not None:
        headers.append(("DPoP", value))
    return call(rs, "GET", "/accounts", headers)


def test_no_proof_with_dpop_scheme(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    challenge(with_proof(rs, issued[1], None), "invalid_dpop_proof")


def test_dpop_token_as_bearer(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    """RFC 9449 7.2 / R6."""
    challenge(with_proof(rs, issued[1], None, scheme="Bearer"), "invalid_token")


def test_two_proofs(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    client, token, _ = issued
    headers = [
        ("Authorization", f"DPoP {token}"),
        ("DPoP", proof(rs, client, "GET", "/accounts", token)),
        ("DPoP", proof(rs, client, "GET", "/accounts", token)),
    ]
    challenge(call(rs, "GET", "/accounts", headers), "invalid_dpop_proof")


@pytest.mark.parametrize(
    "case", ["typ", "none", "rs256", "private", "signature", "other-key", "htm", "htu", "iat-hour", "ath"]
)
def test_bad_proofs(rs: RunningRS, issued: tuple[Client, str, str], case: str) -> None:
    """D3-D10, D13, D14: each broken proof gets the exact challenge."""
    client, token, _ = issued
    ec = ECKey.import_key(client.dpop_key.private_jwk())
    public = client.dpop_key.public_jwk_without_meta()
    header = {"alg": "ES256", "typ": "dpop+jwt", "jwk": public}
    expected = "invalid_dpop_proof"
    if case == "typ":
        value = raw({**header, "typ": "JWT"}, base_claims(rs, token), ec, "ES256")
    elif case == "none":
        value = (
            b64url_encode(json.dumps({"alg": "none", "typ": "dpop+jwt", "jwk": public}).encode())
            + "."
            + b64url_encode(json.dumps(base_claims(rs, token)).encode())
            + "."
        )
    elif case == "rs256":
        rsa = RSAKey.generate_key(2048)
        value = raw(
            {"alg": "RS256", "typ": "dpop+jwt", "jwk": rsa.as_dict(private=False)},
            base_claims(rs, token),
            rsa,
            "RS256",
        )
    elif case == "private":
        value = raw({**header, "jwk": ec.as_dict(private=True)}, base_claims(rs, token), ec, "ES256")
    elif case == "signature":
        good = raw(header, base_claims(rs, token), ec, "ES256")
        value = good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB")
    elif case == "other-key":
        value = proof(rs, client, "GET", "/accounts", token, key=SigningKey.generate("ES256"))
        expected = "invalid_token"  # D14: "Invalid DPoP key binding"
    elif case == "htm":
        value = raw(header, base_claims(rs, token, htm="POST"), ec, "ES256")
    elif case == "htu":
        value = raw(header, base_claims(rs, token, htu="https://other.example/accounts"), ec, "ES256")
    elif case == "iat-hour":
        value = raw(header, base_claims(rs, token, iat=int(rs.guard.clock.now()) - 3600), ec, "ES256")
    else:
        value = raw(header, base_claims(rs, token, ath=b64url_encode(b"x" * 32)), ec, "ES256")
    challenge(with_proof(rs, token, value), expected)


@pytest.mark.parametrize(
    "htu",
    [
        PUBLIC_URL + "/accounts?page=2",
        PUBLIC_URL + "/accounts#top",
        PUBLIC_URL.replace("https://api.example.org", "HTTPS://API.EXAMPLE.ORG") + "/accounts",
        PUBLIC_URL + ":443/accounts",
    ],
)
def test_htu_normalization_accepted(rs: RunningRS, issued: tuple[Client, str, str], htu: str) -> None:
    """D9: query and fragment ignored; scheme and host case-insensitive; the default port may be explicit."""
    client, token, _ = issued
    assert with_proof(rs, token, proof(rs, client, "GET", "/accounts", token, url=htu)).status_code == 200


def test_unknown_extra_claims_accepted(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    client, token, _ = issued
    value = proof(rs, client, "GET", "/accounts", token, extra_claims={"x-extra": [1, 2]})
    assert with_proof(rs, token, value).status_code == 200


def test_replayed_proof(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    """D11 / R7."""
    client, token, _ = issued
    value = proof(rs, client, "GET", "/accounts", token)
    assert with_proof(rs, token, value).status_code == 200
    challenge(with_proof(rs, token, value), "invalid_dpop_proof")


def test_rs_nonce(rs: RunningRS, issued: tuple[Client, str, str], as_server: RunningAS) -> None:
    """D12 / RFC 9449 9: the RS's own nonce; the AS's nonce is not accepted; the retry works."""
    client, token, _ = issued
    value = challenge(
        with_proof(rs, token, proof(rs, client, "GET", "/accounts", token, nonce=None)), "use_dpop_nonce"
    )
    del value
    response = with_proof(rs, token, proof(rs, client, "GET", "/accounts", token, nonce=None))
    nonce = response.headers["dpop-nonce"]
    assert as_server.server is not None and as_server.server.nonces is not None
    as_nonce = as_server.server.nonces.current()
    challenge(
        with_proof(rs, token, proof(rs, client, "GET", "/accounts", token, nonce=as_nonce)), "use_dpop_nonce"
    )
    assert with_proof(rs, token, proof(rs, client, "GET", "/accounts", token, nonce=nonce)).status_code == 200


# -- M5: certificate-bound tokens ----------------------------------------------------------------------


def test_certificate_bound_token(rs: RunningRS, as_server: RunningAS, pki: TestPKI) -> None:
    from tests.server.test_mtls import authorized, code_form, token

    driver = Driver(as_server)
    cert, other = pki.issue("CN=rs mtls client,O=Test"), pki.issue("CN=rs other,O=Test")
    client = driver.add_client(sender_constraint="mtls")
    response, flow = None, authorized(driver, client, cert, jwt_auth=True, extra={"resource": RESOURCE})
    del response
    form = code_form(client, flow)
    access = token(driver, client, cert, form, jwt_auth=True).json()["access_token"]

    def with_cert(c: Any, scheme: str = "Bearer") -> httpx.Response:
        return call(
            rs,
            "GET",
            "/accounts",
            {"Authorization": f"{scheme} {access}"},
            http=httpx.Client(
                verify=c.ssl_context(rs.guard.settings.ca_file)
                if c
                else ssl.create_default_context(cafile=rs.guard.settings.ca_file),
                timeout=20,
            ),
        )

    ok = with_cert(cert)
    assert ok.status_code == 200, (ok.headers, decode_jwt(access)[1])
    challenge(with_cert(other), "invalid_token", scheme="Bearer")
    challenge(with_cert(None), "invalid_token", scheme="Bearer")
    challenge(with_cert(cert, scheme="DPoP"), "invalid_token", scheme="Bearer")


# -- RFC 9728 and evidence ---------------------------------------------------------------------------------


def test_protected_resource_metadata(rs: RunningRS, as_server: RunningAS) -> None:
    response = call(rs, "GET", "/.well-known/oauth-protected-resource", {})
    assert response.status_code == 200
    meta = response.json()
    assert meta["resource"] == RESOURCE
    assert meta["authorization_servers"] == [as_server.issuer]
    assert meta["scopes_supported"] == ["accounts", "payments"]
    assert meta["authorization_details_types_supported"] == ["payment_initiation"]
    assert meta["dpop_signing_alg_values_supported"] == ["PS256", "ES256", "EdDSA"]
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    assert meta["resource_name"] == "Test payments API"


def test_an_allowed_decision_is_on_record_before_its_answer_is_complete(
    rs: RunningRS, issued: tuple[Client, str, str]
) -> None:
    """The record of an allowed request is written before the last byte of its answer, so a
    client (or an investigator) holding the answer finds the record at once, every time."""
    for _ in range(10):
        before = len(rs.guard.decisions)
        assert dpop_call(rs, issued).status_code == 200
        assert len(rs.guard.decisions) == before + 1
        assert rs.guard.decisions[-1]["outcome"] == "allowed"


def test_decisions_are_recorded(rs: RunningRS, issued: tuple[Client, str, str]) -> None:
    client, token, _ = issued
    before = len(rs.guard.decisions)
    dpop_call(rs, issued)
    dpop_call(rs, issued, path="/admin")
    allowed, refused = rs.guard.decisions[before:]
    assert (allowed["event"], allowed["outcome"], allowed["client_id"]) == (
        "rs.access",
        "allowed",
        client.client_id,
    )
    assert json.loads(allowed["detail"]) == {"route": "/accounts", "method": "GET", "status": 200}
    assert allowed["resource"] == json.dumps(RESOURCE)
    assert (
        allowed["sender_constraint"] == "dpop" and allowed["key_thumbprint"] == client.dpop_key.thumbprint()
    )
    assert allowed["token_jti"] == decode_jwt(token)[1]["jti"]
    assert (refused["outcome"], refused["error"], refused["rule"]) == (
        "refused",
        "insufficient_user_authentication",
        "RFC 9470 3",
    )


# -- introspection mode (RFC 7662): revocation takes effect at once ----------------------------------


def test_introspection_mode_refuses_revoked_tokens_at_once(as_server: RunningAS, tls: Any) -> None:
    """R4: with introspection (no cache), a revoked token is refused on the next call."""
    from corridor.resource.guard import ResourceGuard, ResourceSettings
    from corridor.resource.verifiers import Introspection

    driver = Driver(as_server)
    rs_client = driver.add_client()
    identifier = "https://introspected.example.org/api"
    as_server.store.clients.add_resource_server(
        identifier, "Introspected API", ["accounts"], rs_client.client_id, 0.0
    )
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"scope": "accounts", "resource": identifier})
    guard = ResourceGuard(
        ResourceSettings(
            resource=identifier,
            authorization_servers=(as_server.issuer,),
            public_url=PUBLIC_URL,
            ca_file=str(tls.ca_file),
            introspection=Introspection(client_id=rs_client.client_id, key=rs_client.key),
        ),
        clock=as_server.clock,
    )
    access = guard.verify_token(tokens["access_token"])
    assert access.client_id == client.client_id and access.sender_constraint == "dpop"
    assert access.thumbprint == client.dpop_key.thumbprint()
    driver.http.post(
        driver.url("/revoke"), data={**driver.client_auth(client), "token": tokens["refresh_token"]}
    )
    from corridor.resource.tokens import ResourceError

    with pytest.raises(ResourceError) as refused:
        guard.verify_token(tokens["access_token"])
    assert (refused.value.error, refused.value.status) == ("invalid_token", 401)


# -- R1: the API's TLS policy ----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_rs_tls_policy(rs: RunningRS, tls: Any) -> None:
    """R1 / FAPI2 5.2.2: TLS 1.1 and TLS 1.2 CBC refused (each shown possible against a permissive
    server first), ECDHE-GCM on TLS 1.2 accepted."""
    ca = rs.guard.settings.ca_file
    with permissive_server(tls.cert_file, tls.key_file) as permissive_port:
        assert handshake(permissive_port, ca, ssl.TLSVersion.TLSv1_1, OLD_SUITES)
        assert handshake(permissive_port, ca, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        handshake(rs.port, ca, ssl.TLSVersion.TLSv1_1, OLD_SUITES)
    cbc = "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"
    with pytest.raises(ssl.SSLError):
        handshake(rs.port, ca, ssl.TLSVersion.TLSv1_2, cbc)
    suite = "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert handshake(rs.port, ca, ssl.TLSVersion.TLSv1_2, suite) == suite


def test_decisions_can_go_to_the_sql_audit_trail(
    tmp_path: Any, issued: tuple[Client, str, str], as_server: RunningAS, tls: Any
) -> None:
    """Several RS instances share one trail by writing to a store instead of memory."""
    from corridor.audit.sinks import SqlSink
    from corridor.resource.guard import ResourceGuard, ResourceSettings
    from corridor.store.sql import Store

    store = Store(f"sqlite:///{tmp_path / 'rs.db'}")
    store.migrate()
    guard = ResourceGuard(
        ResourceSettings(
            resource=RESOURCE,
            authorization_servers=(as_server.issuer,),
            public_url=PUBLIC_URL,
            ca_file=str(tls.ca_file),
        ),
        clock=as_server.clock,
        sink=SqlSink(store),
    )
    access = guard.verify_token(issued[1])
    guard.record(route="/accounts", method="GET", access=access, error=None)
    (row,) = store.audit.records()
    assert (row["event"], row["outcome"], row["client_id"]) == ("rs.access", "allowed", issued[0].client_id)
    assert row["token_jti"] == access.jti and json.loads(row["resource"]) == RESOURCE
    assert guard.decisions == []


def test_revoked_token_refused_through_https_in_introspection_mode(
    as_server: RunningAS, tls: Any, pki: TestPKI
) -> None:
    """R4 through the API itself: the same token works, is revoked at the AS, and is refused."""
    from corridor.resource.guard import ResourceSettings
    from corridor.resource.verifiers import Introspection
    from tests.resource.api import running_api

    driver = Driver(as_server)
    rs_client = driver.add_client()
    identifier = "https://introspected2.example.org/api"
    as_server.store.clients.add_resource_server(
        identifier, "Introspected API", ["accounts"], rs_client.client_id, 0.0
    )
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"scope": "accounts", "resource": identifier})
    settings = ResourceSettings(
        resource=identifier,
        authorization_servers=(as_server.issuer,),
        public_url=PUBLIC_URL,
        ca_file=str(tls.ca_file),
        introspection=Introspection(client_id=rs_client.client_id, key=rs_client.key),
    )
    with running_api(settings, tls, pki.ca_file, clock=as_server.clock) as api:
        token = tokens["access_token"]
        assert dpop_call(api, (client, token, ""), path="/accounts").status_code == 200
        driver.http.post(
            driver.url("/revoke"), data={**driver.client_auth(client), "token": tokens["refresh_token"]}
        )
        challenge(dpop_call(api, (client, token, "")), "invalid_token")


# -- issue 13 D4: what the consent page showed, every entry ------------------------------------------

TOOL_GRANT = [
    {"type": "agent_tool", "tool": "list_accounts", "actions": ["read"], "purpose": "Show balances"},
    {
        "type": "payment_initiation",
        "instructedAmount": {"currency": "EUR", "amount": "100.00"},
        "creditorName": "Merchant A",
    },
    {
        "type": "payment_initiation",
        "instructedAmount": {"currency": "USD", "amount": "50.00"},
        "creditorName": "Merchant B",
    },
]


@pytest.fixture(scope="module")
def tool_token(as_server: RunningAS) -> tuple[Client, str, str]:
    """A DPoP-bound token with no scope for the API, only an agent_tool and two payment entries."""
    driver = Driver(as_server)
    client = driver.add_client()
    _, tokens = driver.full_flow(
        client,
        extra={"scope": "openid", "resource": RESOURCE, "authorization_details": json.dumps(TOOL_GRANT)},
    )
    return client, tokens["access_token"], tokens["refresh_token"]


def test_an_agent_tool_grants_the_listed_action_only(
    rs: RunningRS, tool_token: tuple[Client, str, str]
) -> None:
    """issue 13 D4: the tool name alone no longer grants; its actions list is enforced."""
    assert decode_jwt(tool_token[1])[1]["authorization_details"] == TOOL_GRANT
    read = dpop_call(rs, tool_token, "/tools/read")
    assert read.status_code == 200, read.text
    for path in ("/tools/export", "/tools/bare"):
        refused = dpop_call(rs, tool_token, path)
        value = challenge(refused, "insufficient_scope", status=403)
        assert "refused by policy: default-deny" in value, value
        assert refused.json()["error"] == "insufficient_scope"
    record = rs.guard.decisions[-1]
    assert record["outcome"] == "refused" and json.loads(record["detail"])["tool_action"] == "list_accounts"
    assert record["rule"] == "Cedar: default-deny (no permit policy applies)"


@pytest.mark.parametrize(
    ("body", "status", "entry", "policy"),
    [
        ({"amount": "100.00", "currency": "EUR", "creditorName": "Merchant A"}, 201, 1, None),
        ({"amount": "50.00", "currency": "USD", "creditorName": "Merchant B"}, 201, 2, None),
        (
            {"amount": "50.01", "currency": "USD", "creditorName": "Merchant B"},
            403,
            None,
            "corridor/forbid-payment-over-granted-amount",
        ),
        (
            {"amount": "5.00", "currency": "EUR", "creditorName": "Merchant B"},
            403,
            None,
            "corridor/forbid-payment-in-another-currency",
        ),
        (
            {"amount": "5.00", "currency": "EUR", "creditorName": "Merchant C"},
            403,
            None,
            "corridor/forbid-payment-to-another-creditor",
        ),
    ],
)
def test_every_approved_payment_entry_counts(
    rs: RunningRS,
    tool_token: tuple[Client, str, str],
    body: dict[str, str],
    status: int,
    entry: int | None,
    policy: str | None,
) -> None:
    """issue 13 D4: the second approved creditor was refused (only the first entry counted)."""
    response = dpop_call(rs, tool_token, "/tools/pay", method="POST", json=body)
    assert response.status_code == status, response.text
    if status == 201:
        assert response.json() == {"status": "accepted", "entry": entry}
    else:
        assert response.json()["error"] == "insufficient_scope"
        assert f"refused by policy: {policy}" in response.headers["www-authenticate"]
        assert rs.guard.decisions[-1]["rule"] == f"Cedar: {policy}"


# -- issue 13 F5: no public URL, no DPoP: refused at construction --------------------------------


@pytest.mark.parametrize(
    ("public_url", "says"),
    [
        (None, "none was given"),
        ("", "none was given"),
        ("api.example.org", "is not one"),
        ("http://api.example.org", "is not one"),
        ("https://", "is not one"),
        ("https://api.example.org/?x=1", "is not one"),
        ("https://api.example.org/#top", "is not one"),
        ("https://user@api.example.org", "is not one"),
        ("https://api.example.org:99999", "is not a URL"),
    ],
)
def test_resource_settings_need_the_public_url(public_url: str | None, says: str) -> None:
    """issue 13 F5: the default public_url "" made every DPoP request fail with an htu mismatch;
    now the settings refuse it at once, saying what to give."""
    from corridor.resource.guard import ResourceSettings

    given: dict[str, Any] = {} if public_url is None else {"public_url": public_url}
    with pytest.raises(ValueError, match="public_url") as raised:
        ResourceSettings(resource=RESOURCE, authorization_servers=("https://as.example",), **given)
    assert says in str(raised.value) and "https://host[:port][/prefix]" in str(raised.value)


@pytest.mark.parametrize("public_url", [PUBLIC_URL, PUBLIC_URL + "/", "https://api.example.org:8443/v1"])
def test_resource_settings_take_a_public_base_url(public_url: str) -> None:
    from corridor.resource.guard import ResourceSettings

    settings = ResourceSettings(
        resource=RESOURCE, authorization_servers=("https://as.example",), public_url=public_url
    )
    assert settings.metadata_url == public_url.rstrip("/") + "/.well-known/oauth-protected-resource"


def test_refusals_without_a_token_are_sampled_per_source_in_the_sql_trail(
    tmp_path: Any, issued: tuple[Client, str, str], as_server: RunningAS, tls: Any
) -> None:
    """issue 13 B4 at the RS: garbage without a verified token costs 3 records per source and window
    (then one aggregate); a refusal of a verified token's request stays one record each."""
    from corridor.audit.sinks import SqlSink
    from corridor.resource.guard import ResourceGuard, ResourceSettings
    from corridor.resource.tokens import ResourceError
    from corridor.store.sql import Store

    store = Store(f"sqlite:///{tmp_path / 'rs.db'}")
    store.migrate()
    guard = ResourceGuard(
        ResourceSettings(
            resource=RESOURCE,
            authorization_servers=(as_server.issuer,),
            public_url=PUBLIC_URL,
            ca_file=str(tls.ca_file),
        ),
        clock=as_server.clock,
        sink=SqlSink(store),
    )
    access = guard.verify_token(issued[1])
    shift = 60 - as_server.clock.now() % 60  # at the start of a window
    as_server.clock.advance(shift)
    bad = ResourceError("invalid_token", "garbage", rule="RFC 6750 3.1")
    try:
        for _ in range(50):
            guard.record(route="/accounts", method="GET", access=None, error=bad, source="203.0.113.9")
    finally:
        as_server.clock.advance(-shift)
    scope = ResourceError("insufficient_scope", "no", rule="RFC 6750 3.1", status=403)
    for _ in range(5):
        guard.record(route="/payments", method="POST", access=access, error=scope, source="203.0.113.9")
    rows = sorted(store.audit.records(), key=lambda r: r["id"])
    assert [(r["error"], r["client_id"]) for r in rows] == [("invalid_token", None)] * 3 + [
        ("insufficient_scope", issued[0].client_id)
    ] * 5
    store.close()
