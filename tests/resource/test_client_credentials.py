"""Issue 20, 1: the client credentials grant (RFC 6749 4.4) under FAPI 2.0, through real HTTPS on
both databases: confidential client authentication only, sender-constrained tokens only (DPoP or
mTLS), ``scope``, ``resource`` and ``authorization_details`` checked as at PAR, no refresh token,
only for clients registered for it; the token works at the resource server, and the evidence
names the client as the actor with no user."""

from __future__ import annotations

import json
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from corridor.audit.log import AuditLog
from corridor.audit.sinks import SqlSink
from corridor.audit.words import step
from corridor.client import FapiClient
from corridor.client.errors import ClientError, TokenEndpointError
from corridor.core.jose import SigningKey
from corridor.resource.guard import ResourceSettings
from corridor.server.clients import ClientMetadataError, build_client_metadata
from corridor.store import schema
from corridor.transport.tls import DevTLS
from tests.pki import TestPKI
from tests.resource.api import RunningRS, running_api
from tests.resource.test_guard import PAYMENT, call, challenge, dpop_call
from tests.server.test_mtls import token as mtls_token
from tests.server.test_mtls import userinfo as mtls_userinfo
from tests.support import RESOURCE, Client, Driver, decode_jwt

CC = ("client_credentials",)


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"


def cc_request(driver: Driver, client: Client, **form: Any) -> httpx.Response:
    return driver.token_request(client, {"grant_type": "client_credentials", **form})


def tls_client(driver: Driver, subject_dn: str) -> Client:
    """A client credentials client with tls_client_auth and certificate-bound tokens (RFC 8705)."""
    return driver.add_client(
        grant_types=CC,
        scope="accounts",
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": subject_dn},
    )


def records_of(driver: Driver, client: Client) -> list[dict[str, Any]]:
    return [dict(r) for r in driver.as_.store.audit.records() if r["client_id"] == client.client_id]


# -- the happy paths ------------------------------------------------------------------------------------


def test_a_dpop_bound_token_for_the_client_itself(driver: Driver, rs: RunningRS) -> None:
    client = driver.add_client(grant_types=CC, scope="accounts payments")
    response = cc_request(
        driver,
        client,
        scope="accounts payments",
        resource=RESOURCE,
        authorization_details=json.dumps(PAYMENT),
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "DPoP" and body["scope"] == "accounts payments"
    assert "refresh_token" not in body and "id_token" not in body  # RFC 6749 4.4.3
    assert body["authorization_details"] == PAYMENT
    _, claims = decode_jwt(body["access_token"])
    assert claims["sub"] == client.client_id == claims["client_id"]  # RFC 9068 2.2: no user
    assert "auth_time" not in claims and "acr" not in claims
    assert claims["cnf"] == {"jkt": client.dpop_key.thumbprint()}
    assert claims["aud"] == RESOURCE and claims["exp"] - claims["iat"] == body["expires_in"]
    # The resource server takes it like any other DPoP-bound token, and its record says that no
    # user was involved (written to the AS's database here, as a shared trail).
    before = rs.guard.audit
    rs.guard.audit = AuditLog(SqlSink(driver.as_.store), role="rs")
    try:
        answer = dpop_call(rs, (client, body["access_token"], ""))
    finally:
        rs.guard.audit = before
    assert answer.status_code == 200, answer.text
    assert answer.json()["client"] == client.client_id
    (access,) = [
        r for r in driver.as_.store.audit.records(token_jti=claims["jti"]) if r["event"] == "rs.access"
    ]
    assert access["outcome"] == "allowed" and access["user_id"] is None
    assert access["client_id"] == client.client_id and access["grant_id"] == claims["grant_id"]
    assert json.loads(access["detail"])["actor"] == "client"
    # The grant row and the record: the client acted, no user was involved.
    with driver.as_.store.engine.connect() as conn:
        grant = conn.execute(select(schema.grants).where(schema.grants.c.id == claims["grant_id"])).one()
    assert grant.user_id is None and grant.auth_time is None and grant.acr is None
    assert grant.refresh_token_hash is None and grant.expires_at == claims["exp"]
    (record,) = [r for r in records_of(driver, client) if r["event"] == "token.client_credentials"]
    assert record["outcome"] == "issued" and record["user_id"] is None
    assert record["grant_id"] == claims["grant_id"] and record["token_jti"] == claims["jti"]
    assert record["sender_constraint"] == "dpop" and record["key_thumbprint"] == client.dpop_key.thumbprint()
    assert record["scope"] == "accounts payments" and json.loads(record["resource"]) == [RESOURCE]
    assert json.loads(record["authorization_details"]) == PAYMENT
    assert json.loads(record["detail"]) == {"actor": "client", "user_involved": False}
    words = step({**record, "detail": json.loads(record["detail"])})
    assert words.title == "The client got a token for itself (no user involved)"
    assert any("no user was involved" in s.text for s in words.sentences)


def test_a_certificate_bound_token_for_a_tls_client(driver: Driver, rs: RunningRS, pki: TestPKI) -> None:
    cert, other = pki.issue("CN=cc mtls client,O=Test"), pki.issue("CN=cc other,O=Test")
    client = tls_client(driver, "CN=cc mtls client,O=Test")
    form = {"grant_type": "client_credentials", "scope": "accounts", "resource": RESOURCE}
    response = mtls_token(driver, client, cert, form)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and "refresh_token" not in body
    _, claims = decode_jwt(body["access_token"])
    assert claims["sub"] == client.client_id and set(claims["cnf"]) == {"x5t#S256"}
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    ca = rs.guard.settings.ca_file
    ok = call(rs, "GET", "/accounts", bearer, http=httpx.Client(verify=cert.ssl_context(ca), timeout=20))
    assert ok.status_code == 200, ok.text
    stolen = call(rs, "GET", "/accounts", bearer, http=httpx.Client(verify=other.ssl_context(ca), timeout=20))
    challenge(stolen, "invalid_token", scheme="Bearer")  # FAPI2 5.3.4: bound to the certificate
    # RFC 8705 3: without a certificate there is nothing to bind to.
    assert_error(
        mtls_token(driver, client, None, {"grant_type": "client_credentials"}), 401, "invalid_client"
    )


# -- who may use it -----------------------------------------------------------------------------------


def test_only_clients_registered_for_it(driver: Driver) -> None:
    """RFC 6749 5.2 / RFC 7591 2: the default registration is the code flow only."""
    code_client = driver.add_client()
    assert_error(cc_request(driver, code_client, scope="accounts"), 400, "unauthorized_client")
    cc_client = driver.add_client(grant_types=CC, scope="accounts")
    for grant_type, form in (
        ("authorization_code", {"code": "x" * 43, "code_verifier": "v" * 43, "redirect_uri": "https://c/cb"}),
        ("refresh_token", {"refresh_token": "x" * 43}),
    ):
        response = driver.token_request(cc_client, {"grant_type": grant_type, **form})
        assert_error(response, 400, "unauthorized_client")
    # RFC 6749 4.1.2.1: and it never pushes an authorization request (it has no user to ask).
    response, _ = driver.par(
        cc_client, extra={"redirect_uri": "https://client.example/cb", "scope": "accounts"}
    )
    assert_error(response, 400, "unauthorized_client")
    both = driver.add_client(
        grant_types=("authorization_code", "refresh_token", *CC), scope="openid accounts"
    )
    assert cc_request(driver, both, scope="accounts").status_code == 200
    driver.full_flow(both)  # and its code flow still works


def test_confidential_clients_only(driver: Driver) -> None:
    """FAPI2 5.3.2.1-6: private_key_jwt (or mTLS); a wrong key or no assertion is invalid_client."""
    client = driver.add_client(grant_types=CC, scope="accounts")
    impostor = Client(client.client_id, SigningKey.generate("ES256"), client.dpop_key)
    assert_error(cc_request(driver, impostor, scope="accounts"), 401, "invalid_client")
    bare = driver.token_request(
        client,
        {"grant_type": "client_credentials", "client_id": client.client_id, "scope": "accounts"},
        auth=False,
    )
    assert_error(bare, 401, "invalid_client")


def test_no_bearer_token_for_a_dpop_client(driver: Driver) -> None:
    """FAPI2 5.3.2.1-4, RFC 9449 5.2: no proof, no token; a replayed proof is refused too."""
    client = driver.add_client(grant_types=CC, scope="accounts")
    form = {**driver.client_auth(client), "grant_type": "client_credentials", "scope": "accounts"}
    assert_error(driver.http.post(driver.url("/token"), data=form), 400, "invalid_dpop_proof")
    proof = driver.proof(client, "POST", driver.htu("/token"))
    first = driver.http.post(
        driver.url("/token"), data={**form, **driver.client_auth(client)}, headers={"DPoP": proof}
    )
    assert first.status_code == 200, first.text
    again = driver.http.post(
        driver.url("/token"), data={**form, **driver.client_auth(client)}, headers={"DPoP": proof}
    )
    assert_error(again, 400, "invalid_dpop_proof")  # RFC 9449 11.1


# -- what it may ask for ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"scope": "openid accounts"}, 400, "invalid_scope"),  # no user to identify
        ({"scope": "payments"}, 400, "invalid_scope"),  # not registered for the client
        ({"scope": "acc\x01ounts"}, 400, "invalid_scope"),
        ({}, 400, "invalid_scope"),  # RFC 6749 3.3: nothing asked for
        ({"scope": "accounts", "resource": "https://elsewhere.example/api"}, 400, "invalid_target"),
        (
            {"scope": "accounts", "authorization_details": '[{"type": "unknown"}]'},
            400,
            "invalid_authorization_details",
        ),
        ({"scope": "accounts", "authorization_details": "{not json"}, 400, "invalid_authorization_details"),
        ({"scope": "accounts", "refresh_token": "x"}, 400, "invalid_request"),
        ({"scope": "accounts", "code": "x"}, 400, "invalid_request"),
        ({"scope": "accounts", "username": "alice", "password": "p"}, 400, "invalid_request"),
        ({"scope": "accounts " + "x" * 10_000}, 400, "invalid_scope"),
    ],
)
def test_refusals(driver: Driver, form: dict[str, str], status: int, error: str) -> None:
    client = driver.add_client(grant_types=CC, scope="accounts")
    response = cc_request(driver, client, **form)
    assert_error(response, status, error)
    (record,) = [r for r in records_of(driver, client) if r["outcome"] == "refused"]
    assert record["event"] == "token" and record["error"] == error and record["user_id"] is None


def test_the_token_cannot_reach_userinfo_and_ends_with_its_client(driver: Driver) -> None:
    """OIDC Core 5.3: no openid scope, no user: UserInfo refuses; introspection tells the client
    apart from a user; removing the client (issue 13 D2) ends the token at once."""
    client = driver.add_client(grant_types=CC, scope="accounts")
    access = cc_request(driver, client, scope="accounts").json()["access_token"]
    proof = driver.proof(client, "GET", driver.htu("/userinfo"), access_token=access)
    answer = driver.http.get(
        driver.url("/userinfo"), headers={"Authorization": f"DPoP {access}", "DPoP": proof}
    )
    assert answer.status_code == 403, answer.text
    assert answer.headers["www-authenticate"].startswith('DPoP error="insufficient_scope"')
    seen = driver.introspect(client, access).json()
    assert seen["active"] is True and seen["sub"] == client.client_id and "auth_time" not in seen
    other = driver.add_client(grant_types=CC, scope="accounts")  # keeps an introspecting caller
    driver.as_.store.clients.remove(client.client_id, driver.now())
    assert driver.introspect(other, access).json() == {"active": False}


def test_discovery_names_the_grant(driver: Driver) -> None:
    meta = driver.http.get(driver.url("/.well-known/oauth-authorization-server")).json()
    assert meta["grant_types_supported"] == ["authorization_code", "refresh_token", "client_credentials"]


# -- registration --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grant_types", "redirect_uris", "message"),
    [
        (("password",), (), "grant type 'password' is not allowed"),
        (("implicit",), (), "grant type 'implicit' is not allowed"),
        ((), (), "grant type '' is not allowed"),
        (("refresh_token", "client_credentials"), (), "refresh_token needs authorization_code"),
        (
            ("client_credentials",),
            ("https://client.example/cb",),
            "redirect URIs belong to the authorization_code",
        ),
        (("authorization_code",), (), "at least one redirect URI is required"),
    ],
)
def test_registration_refusals(
    grant_types: tuple[str, ...], redirect_uris: tuple[str, ...], message: str
) -> None:
    key = SigningKey.generate("ES256")
    with pytest.raises(ClientMetadataError, match=message):
        build_client_metadata(
            redirect_uris=redirect_uris, grant_types=grant_types, jwks={"keys": [key.public_jwk]}
        )


def test_a_client_credentials_registration() -> None:
    key = SigningKey.generate("ES256")
    meta = build_client_metadata(
        redirect_uris=(), grant_types=CC, jwks={"keys": [key.public_jwk]}, scope="accounts"
    )
    assert meta["grant_types"] == ["client_credentials"]
    assert meta["response_types"] == [] and meta["redirect_uris"] == []


def test_mtls_userinfo_refuses_too(driver: Driver, pki: TestPKI) -> None:
    cert = pki.issue("CN=cc userinfo,O=Test")
    client = tls_client(driver, "CN=cc userinfo,O=Test")
    access = mtls_token(
        driver, client, cert, {"grant_type": "client_credentials", "scope": "accounts"}
    ).json()["access_token"]
    answer = mtls_userinfo(driver, cert, access)
    assert answer.status_code == 403 and 'error="insufficient_scope"' in answer.headers["www-authenticate"]


# -- corridor.client --------------------------------------------------------------------------------


def test_the_client_library_gets_and_renews_a_token(driver: Driver, tls: DevTLS, pki: TestPKI) -> None:
    """FapiClient.client_credentials: a DPoP-bound token for an API, used through FapiAuth, and
    asked for again before it expires (there is no refresh token to use)."""

    def settings(url: str) -> ResourceSettings:
        return ResourceSettings(
            resource=url,
            authorization_servers=(driver.issuer,),
            public_url=url,
            scopes_supported=("accounts",),
            authorization_details_types=("payment_initiation",),
            ca_file=str(tls.ca_file),
        )

    registered = driver.add_client(grant_types=CC, scope="accounts payments")
    client = FapiClient(
        driver.issuer,
        registered.client_id,
        key=registered.key,
        ca_file=str(driver.as_.tls.ca_file),
        clock=driver.as_.clock,
    )
    with running_api(settings, tls, pki.ca_file, clock=driver.as_.clock) as api:
        driver.as_.store.clients.add_resource_server(api.url, "Agent API", ["accounts"], None, 0.0)
        tokens = client.client_credentials("accounts", resource=api.url, authorization_details=PAYMENT)
        assert tokens.refresh_token is None and tokens.id_token_claims is None
        assert tokens.authorization_details == tuple(PAYMENT) and tokens.resources == (api.url,)
        auth = client.auth(tokens)
        context = ssl.create_default_context(cafile=str(tls.ca_file))
        with httpx.Client(verify=context, auth=auth, timeout=20) as http:
            first = http.get(api.url + "/accounts")
            assert first.status_code == 200, first.text
            driver.as_.clock.advance(290)  # within 30 s of expiry: a new token first
            second = http.get(api.url + "/accounts")
    assert second.status_code == 200, second.text
    assert auth.tokens.access_token != tokens.access_token
    assert decode_jwt(auth.tokens.access_token)[1]["authorization_details"] == PAYMENT
    with pytest.raises(ClientError, match="redirect_uri"):
        client.start("accounts")  # no code flow without a redirect URI
    refused = FapiClient(
        driver.issuer,
        driver.add_client().client_id,
        key=registered.key,
        ca_file=str(driver.as_.tls.ca_file),
        clock=driver.as_.clock,
    )
    with pytest.raises(TokenEndpointError) as caught:
        refused.client_credentials("accounts")
    assert caught.value.error == "invalid_client"  # the key is not that client's


def test_one_assertion_sent_twice_at_once_gets_one_token(driver: Driver) -> None:
    """A double submit: the same client assertion (one jti, OIDC Core 9) in two requests at once,
    each with its own DPoP proof. The jti is spent in the request's transaction, so exactly one
    gets a token and the other is 401 invalid_client; one grant row, not two."""
    client = driver.add_client(grant_types=CC, scope="accounts")
    auth = driver.client_auth(client)
    barrier = threading.Barrier(2)

    def post() -> httpx.Response:
        proof = driver.proof(client, "POST", driver.htu("/token"))
        with driver.as_.http() as http:
            barrier.wait(10)
            return http.post(
                driver.url("/token"),
                data={**auth, "grant_type": "client_credentials", "scope": "accounts"},
                headers={"DPoP": proof},
            )

    with ThreadPoolExecutor(2) as pool:
        answers = [f.result() for f in [pool.submit(post), pool.submit(post)]]
    assert sorted(a.status_code for a in answers) == [200, 401], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 401)
    assert refused.json()["error"] == "invalid_client"
    with driver.as_.store.engine.connect() as conn:
        grants = conn.execute(
            select(schema.grants).where(schema.grants.c.client_id == client.client_id)
        ).all()
    assert len(grants) == 1
