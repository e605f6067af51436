"""Interop: requests-oauth2client with private_key_jwt and certificate-bound access tokens
(RFC 8705 3) against our AS over real TLS, every back-channel call at the server's mTLS
endpoint aliases (RFC 8705 5).

requests-oauth2client 1.8 has no notion of mtls_endpoint_aliases; a client that uses them
(FAPI's use_mtls_endpoint_aliases) takes each alias in place of the plain endpoint, which is
what the test does with the published metadata before handing it to the library. The
requests.Session carries the client certificate; the library builds every message (PAR with
PKCE S256, the client assertions, the code exchange with ID token validation, userinfo with
its BearerToken auth, the refresh, introspection).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from jwskate import Jwk
from requests_oauth2client import BearerToken, IdToken, OAuth2Client, PrivateKeyJwt
from requests_oauth2client.discovery import oidc_discovery_document_url

from tests.interop.conftest import Consent
from tests.interop.test_requests_oauth2client import RecordingAdapter
from tests.pki import TestPKI
from tests.support import Driver, RunningAS, decode_jwt

SCOPE = "openid profile offline_access accounts"


@pytest.fixture
def session(as_server: RunningAS) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.verify = str(as_server.tls.ca_file)
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override session.verify when
        # trust_env is on (psf/requests#3829): trust only the test CA.
        session.trust_env = False
        yield session


def test_requests_oauth2client_private_key_jwt_with_certificate_bound_tokens(
    driver: Driver, consent: Consent, session: requests.Session, pki: TestPKI
) -> None:
    issuer = driver.issuer
    cert = pki.issue("CN=requests-oauth2client mtls client,O=Test")
    client = driver.add_client(sender_constraint="mtls")
    username = driver.add_user()
    # The certificate goes with every connection; only the mTLS listener asks for it.
    session.cert = (str(cert.cert_file), str(cert.key_file))

    exchanges: list[tuple[str, str, int]] = []
    assertions: list[dict[str, Any]] = []

    def record(response: requests.Response) -> None:
        exchanges.append((response.request.method or "", response.url, response.status_code))
        sent = response.request.body
        form = dict(parse_qsl(sent.decode() if isinstance(sent, bytes) else str(sent or "")))
        if "client_assertion" in form:
            assertions.append(decode_jwt(form["client_assertion"])[1])

    session.mount("https://", RecordingAdapter(record))

    # Discovery, then the aliases in place of the plain endpoints (RFC 8705 5).
    discovery = session.get(oidc_discovery_document_url(issuer), timeout=20)
    assert discovery.status_code == 200, discovery.text
    metadata = discovery.json()
    aliases = metadata["mtls_endpoint_aliases"]
    assert metadata["tls_client_certificate_bound_access_tokens"] is True
    assert aliases["pushed_authorization_request_endpoint"] == driver.mtls_url("/par")
    assert aliases["token_endpoint"] == driver.mtls_url("/token")
    assert aliases["userinfo_endpoint"] == driver.mtls_url("/userinfo")
    assert aliases["introspection_endpoint"] == driver.mtls_url("/introspect")
    assert urlsplit(aliases["token_endpoint"]).netloc != urlsplit(issuer).netloc
    assert "authorization_endpoint" not in aliases  # the browser's endpoint has no alias

    oauth = OAuth2Client.from_discovery_document(
        {**metadata, **aliases},
        issuer=issuer,
        auth=PrivateKeyJwt(client.client_id, Jwk(client.key.private_jwk()), aud=issuer),
        redirect_uri=client.redirect_uri,
        session=session,
        id_token_signed_response_alg="ES256",
    )
    assert oauth.issuer == issuer
    assert oauth.token_endpoint == aliases["token_endpoint"]
    assert oauth.authorization_endpoint == issuer + "/authorize"
    # The AS keys for ID token validation (from_discovery_document leaves fetching them to us).
    exchanges.clear()
    oauth.update_authorization_server_public_keys()
    assert exchanges == [("GET", metadata["jwks_uri"], 200)]

    # PAR at the alias, with PKCE S256 and a client assertion; no DPoP.
    request = oauth.authorization_request(scope=SCOPE, authorization_response_iss_parameter_supported=True)
    assert request.code_challenge_method == "S256"
    assert request.dpop_key is None
    exchanges.clear()
    pushed = oauth.pushed_authorization_request(request)
    assert exchanges == [("POST", aliases["pushed_authorization_request_endpoint"], 201)]
    assert pushed.request_uri.startswith("urn:ietf:params:oauth:request_uri:")

    callback = consent(pushed.uri, username)
    response = request.validate_callback(callback)
    assert response.kwargs["iss"] == issuer

    # The code exchange at the alias; the library validates the ID token (signature, iss, aud, nonce).
    exchanges.clear()
    token = oauth.authorization_code(response)
    assert exchanges == [("POST", aliases["token_endpoint"], 200)]
    assert type(token) is BearerToken
    assert token.token_type == "Bearer"
    assert token.refresh_token
    assert isinstance(token.id_token, IdToken)
    assert token.id_token.nonce == request.nonce
    assert token.id_token.audiences == [client.client_id]
    _, claims = decode_jwt(token.access_token)
    assert claims["cnf"] == {"x5t#S256": cert.thumbprint}
    assert claims["client_id"] == client.client_id
    assert claims["iss"] == issuer

    # UserInfo at the alias: the library's BearerToken auth, the certificate on the connection.
    exchanges.clear()
    info = oauth.userinfo(token)
    assert exchanges == [("POST", aliases["userinfo_endpoint"], 200)]
    assert info["sub"] == claims["sub"]
    assert info["preferred_username"] == username

    # The bound token is refused with another certificate (RFC 8705 3): the binding is real.
    other = pki.issue("CN=someone else,O=Test")
    with requests.Session() as stranger:
        stranger.verify, stranger.trust_env = str(driver.as_.tls.ca_file), False
        stranger.cert = (str(other.cert_file), str(other.key_file))
        refused = stranger.post(aliases["userinfo_endpoint"], auth=token, timeout=20)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')

    # Introspection at the alias shows the binding.
    exchanges.clear()
    introspection = oauth.introspect_token(token.access_token, token_type_hint="access_token")
    assert exchanges == [("POST", aliases["introspection_endpoint"], 200)]
    assert introspection["active"] is True
    assert introspection["token_type"] == "Bearer"
    assert introspection["cnf"] == {"x5t#S256": cert.thumbprint}

    # Refresh at the alias, bound to the same certificate.
    exchanges.clear()
    refreshed = oauth.refresh_token(token)
    assert exchanges == [("POST", aliases["token_endpoint"], 200)]
    assert type(refreshed) is BearerToken
    assert refreshed.token_type == "Bearer"
    assert refreshed.access_token != token.access_token
    _, refreshed_claims = decode_jwt(refreshed.access_token)
    assert refreshed_claims["cnf"] == {"x5t#S256": cert.thumbprint}
    assert refreshed_claims["sub"] == claims["sub"]
    assert refreshed_claims["jti"] != claims["jti"]

    # private_key_jwt: aud is the issuer identifier as a string even at the aliases, a new jti each time.
    assert len(assertions) == 4  # PAR, code exchange, introspection, refresh
    for assertion in assertions:
        assert assertion["aud"] == issuer
        assert assertion["iss"] == assertion["sub"] == client.client_id
    assert len({a["jti"] for a in assertions}) == len(assertions)
