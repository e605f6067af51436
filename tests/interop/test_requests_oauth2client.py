"""Interop: requests-oauth2client drives the whole FAPI 2.0 flow against our AS over HTTPS.

Every message the client sends (discovery, PAR with PKCE S256 and DPoP, the client
assertions, the DPoP nonce retry, the code exchange, the refresh, userinfo) is built by
the library; the test only plays the user on the login and consent pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from jwskate import Jwk
from requests.adapters import HTTPAdapter
from requests_oauth2client import (
    BearerToken,
    DPoPToken,
    IdToken,
    MismatchingIssuer,
    MissingIssuer,
    OAuth2Client,
    PrivateKeyJwt,
)

from corridor.core.jose import jwk_thumbprint
from tests.interop.conftest import Consent
from tests.support import Driver, RunningAS, decode_jwt


class RecordingAdapter(HTTPAdapter):
    def __init__(self, sink: Callable[[requests.Response], None]) -> None:
        super().__init__()
        self.sink = sink

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().send(request, *args, **kwargs)
        self.sink(response)
        return response


@pytest.fixture
def session(as_server: RunningAS) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.verify = str(as_server.tls.ca_file)
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override session.verify when
        # trust_env is on (psf/requests#3829): trust only the test CA.
        session.trust_env = False
        yield session


def test_requests_oauth2client_par_dpop_private_key_jwt_flow(
    driver: Driver, consent: Consent, session: requests.Session
) -> None:
    as_server = driver.as_
    issuer = as_server.issuer
    client = driver.add_client()
    username = driver.add_user()

    # Observe (never alter) what goes over the wire, at the transport adapter: the library's
    # DPoP retry for resource requests resends through the adapter, bypassing session hooks.
    exchanges: list[tuple[str, str, int, dict[str, Any]]] = []
    assertions: list[dict[str, Any]] = []

    def record(response: requests.Response) -> None:
        body: dict[str, Any] = {}
        if response.headers.get("content-type", "").startswith("application/json"):
            body = dict(response.json())
        if "DPoP-Nonce" in response.headers:
            body["_DPoP-Nonce"] = response.headers["DPoP-Nonce"]
        exchanges.append((response.request.method or "", response.url, response.status_code, body))
        sent = response.request.body
        if isinstance(sent, bytes):
            sent = sent.decode()
        assert sent is None or isinstance(sent, str)  # a form, never a stream
        form = dict(parse_qsl(sent or ""))
        if "client_assertion" in form:
            assertions.append(decode_jwt(form["client_assertion"])[1])

    session.mount("https://", RecordingAdapter(record))

    private_jwk = Jwk(client.key.private_jwk())
    oauth = OAuth2Client.from_discovery_endpoint(
        issuer=issuer,
        auth=PrivateKeyJwt(client.client_id, private_jwk, aud=issuer),
        redirect_uri=client.redirect_uri,
        session=session,
        dpop_bound_access_tokens=True,
        id_token_signed_response_alg="ES256",
    )
    assert exchanges[0][:3] == ("GET", issuer + "/.well-known/openid-configuration", 200)
    assert oauth.issuer == issuer
    assert oauth.pushed_authorization_request_endpoint == issuer + "/par"
    assert oauth.authorization_response_iss_parameter_supported is True

    # PAR with PKCE S256 and a DPoP proof; the first attempt earns a use_dpop_nonce.
    request = oauth.authorization_request(
        scope="openid profile offline_access accounts",
        authorization_response_iss_parameter_supported=True,
    )
    assert request.code_challenge_method == "S256"
    assert request.dpop_key is not None
    dpop_key = request.dpop_key
    exchanges.clear()
    pushed = oauth.pushed_authorization_request(request)
    assert [(m, u, s) for m, u, s, _ in exchanges] == [
        ("POST", issuer + "/par", 400),
        ("POST", issuer + "/par", 201),
    ]
    assert exchanges[0][3]["error"] == "use_dpop_nonce"
    assert dpop_key.as_nonce == exchanges[0][3]["_DPoP-Nonce"]
    assert pushed.request_uri.startswith("urn:ietf:params:oauth:request_uri:")
    assert set(pushed.furl.args) == {"client_id", "request_uri"}

    # The user logs in and approves; the library validates the response (state and iss).
    callback = consent(pushed.uri, username)
    query = dict(parse_qsl(urlsplit(callback).query))
    assert query["iss"] == issuer and query["state"] == request.state

    # The library's RFC 9207 check is live: a wrong or missing iss is refused.
    def with_query(params: dict[str, str]) -> str:
        return urlunsplit(urlsplit(callback)._replace(query=urlencode(params)))

    with pytest.raises(MismatchingIssuer):
        request.validate_callback(with_query({**query, "iss": "https://evil.example"}))
    with pytest.raises(MissingIssuer):
        request.validate_callback(with_query({k: v for k, v in query.items() if k != "iss"}))
    response = request.validate_callback(callback)
    assert response.code == query["code"]
    assert response.kwargs["iss"] == issuer

    # The code exchange, DPoP-bound to the PAR key; the ID token is validated too.
    exchanges.clear()
    # validate=False: requests-oauth2client 1.8 runs every ID token check but then rebuilds
    # the token with self.__class__(...) without _dpop_key, a TypeError for a DPoPToken
    # (tokens.py, end of BearerToken.validate_id_token). Its checks run below on a copy.
    token = oauth.authorization_code(response, validate=False)
    assert [(m, u, s) for m, u, s, _ in exchanges] == [("POST", issuer + "/token", 200)]
    assert isinstance(token, DPoPToken)
    assert token.token_type == "DPoP"
    assert token.dpop_key is dpop_key
    assert token.refresh_token
    assert token.id_token is not None
    validated = BearerToken(token.access_token, id_token=token.id_token).validate_id_token(oauth, response)
    assert validated.id_token is not None
    assert isinstance(validated.id_token, IdToken)  # signed, not encrypted
    assert validated.id_token.nonce == request.nonce
    assert validated.id_token.issuer == issuer
    assert validated.id_token.audiences == [client.client_id]
    expected_jkt = jwk_thumbprint(dpop_key.public_jwk.to_dict())
    assert dpop_key.dpop_jkt == expected_jkt
    _, claims = decode_jwt(token.access_token)
    assert claims["cnf"] == {"jkt": expected_jkt}
    assert claims["client_id"] == client.client_id
    assert claims["iss"] == issuer

    # UserInfo with the DPoP-bound token: the library keeps resource-server nonces apart
    # from AS ones, so it earns a 401 use_dpop_nonce challenge first and retries.
    exchanges.clear()
    info = oauth.userinfo(token)
    assert [(m, u, s) for m, u, s, _ in exchanges] == [
        ("POST", issuer + "/userinfo", 401),
        ("POST", issuer + "/userinfo", 200),
    ]
    assert exchanges[0][3]["error"] == "use_dpop_nonce"
    assert dpop_key.rs_nonce == exchanges[0][3]["_DPoP-Nonce"]
    assert info["sub"] == claims["sub"]
    assert info["preferred_username"] == username

    # Refresh, proved with the same DPoP key.
    refreshed = oauth.refresh_token(token)
    assert isinstance(refreshed, DPoPToken)
    assert refreshed.token_type == "DPoP"
    assert refreshed.access_token != token.access_token
    _, refreshed_claims = decode_jwt(refreshed.access_token)
    assert refreshed_claims["cnf"] == {"jkt": expected_jkt}
    assert refreshed_claims["sub"] == claims["sub"]
    assert refreshed_claims["jti"] != claims["jti"]

    # private_key_jwt: aud is the issuer identifier as a string (FAPI2 5.3.2.1-8), a new jti each time.
    assert len(assertions) == 4  # PAR twice (nonce retry), code exchange, refresh
    for assertion in assertions:
        assert assertion["aud"] == issuer
        assert assertion["iss"] == assertion["sub"] == client.client_id
    assert len({a["jti"] for a in assertions}) == len(assertions)
