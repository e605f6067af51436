"""Bounded input from outside (issue 13 B5, B8; design.md 5c), on both databases.

B5: JSON documents from outside have a bounded depth and size; a custom authorization_details
type that accepts any object still gets a document no deeper than 32 levels, refused at PAR with
``invalid_authorization_details`` and nothing stored.

B8: identifiers from outside (client_id, assertion iss and kid, jti, request_uri, user name, code,
refresh token) are checked for length and characters before they reach the store or the audit
row: the endpoint's exact OAuth error, never a 500 (PostgreSQL refuses values longer than the
column and NUL characters).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from corridor.store import schema
from corridor.transport.tls import DevTLS
from tests.pki import TestPKI
from tests.support import JWT_BEARER, PASSWORD, RESOURCE, Driver, RunningAS, running_as

#: A deployment's own type that accepts any object (the schema bounds nothing).
OPEN_TYPE = {
    "type": "open_document",
    "schema": {"type": "object", "required": ["type"]},
    "template": "An open document{% if note %}: {{ note }}{% endif %}",
}


@pytest.fixture(scope="module")
def as_server(
    tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, pki: TestPKI, database: str
) -> Iterator[RunningAS]:
    """The shared AS of tests/conftest.py, plus the open custom type."""
    data_dir = tmp_path_factory.mktemp("as")
    type_file = data_dir / "open.json"
    type_file.write_text(json.dumps(OPEN_TYPE))
    with running_as(
        data_dir,
        tls,
        mtls_ca_file=str(pki.ca_file),
        database_url=database,
        authorization_details_types=[
            "payment_initiation",
            "account_information",
            "agent_tool",
            "open_document",
        ],
        authorization_details_type_files=[str(type_file)],
    ) as running:
        running.store.clients.add_resource_server(RESOURCE, "Test API", ["accounts", "payments"], None, 0.0)
        yield running


def pushed_count(as_server: RunningAS) -> int:
    with as_server.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.pushed_requests)).scalar_one())


def nested_text(depth: int) -> str:
    """One open_document entry whose ``deep`` member makes the document ``depth`` levels deep in
    all (the array and the entry count as two), built as text (json.dumps would recurse)."""
    levels = depth - 2
    return '[{"type":"open_document","deep":' + "[" * levels + "1" + "]" * levels + "}]"


# -- B5 -------------------------------------------------------------------------------------------


def test_a_document_32_levels_deep_is_accepted_and_shown(driver: Driver, as_server: RunningAS) -> None:
    """Positive control: the limit is 32 levels; such a document passes PAR and the consent page."""
    client = driver.add_client()
    response, flow = driver.par(client, extra={"authorization_details": nested_text(32)})
    assert response.status_code == 201, response.text
    assert driver.authorize(client, flow).status_code == 303
    assert flow.code


@pytest.mark.parametrize("depth", [33, 493, 494, 10_000])
def test_a_deeper_document_is_refused_at_par_and_nothing_is_stored(
    driver: Driver, as_server: RunningAS, depth: int
) -> None:
    """Issue 13 B5: 494 levels gave a 500 at PAR (with the pushed request stored), 493 a 500 on
    the consent page; now every depth beyond 32 is invalid_authorization_details, nothing stored."""
    client = driver.add_client()
    before = pushed_count(as_server)
    response, _ = driver.par(client, extra={"authorization_details": nested_text(depth)})
    assert response.status_code == 400, response.text[:300]
    body = response.json()
    assert body["error"] == "invalid_authorization_details", body
    assert "deep" in body["error_description"], body
    assert pushed_count(as_server) == before


def test_a_too_large_document_is_refused(driver: Driver, as_server: RunningAS) -> None:
    """Issue 13 B5: the size bound (the body bound of 64 KiB is the outer one)."""
    client = driver.add_client()
    before = pushed_count(as_server)
    details = [{"type": "open_document", "note": "x" * 40_000}]
    response, _ = driver.par(client, extra={"authorization_details": json.dumps(details)})
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"] == "invalid_authorization_details"
    assert "large" in response.json()["error_description"]
    assert pushed_count(as_server) == before


@pytest.mark.parametrize("where", ["header", "payload"])
def test_a_deep_client_assertion_is_invalid_client(driver: Driver, as_server: RunningAS, where: str) -> None:
    """Issue 13 B5: JWT headers and payloads are bounded too (33 levels is one too many)."""
    from tests.hostile import enc, enc_text

    deep = enc_text("[" * 33 + "]" * 33)
    assertion = f"{deep}.e30.AA" if where == "header" else f"{enc({'alg': 'ES256'})}.{deep}.AA"
    client = driver.add_client()
    before = pushed_count(as_server)
    response, _ = driver.par(client, extra={"client_assertion": assertion})
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert pushed_count(as_server) == before


# -- B8 -------------------------------------------------------------------------------------------

#: ``client`` in full-width letters (U+FF43...): not ASCII, but no control character.
FULLWIDTH = "\uff43\uff4c\uff49\uff45\uff4e\uff54"
#: Identifiers that are too long or carry characters no identifier has.
ODD_IDENTIFIERS = [
    "c" * 256,
    "c" * 10_240,
    "c-\x00",
    "c-\n-forged",
    "c-\x1b[31m",
    "c-\u202e",
    "c-\u2066x",
    "c-\x85",
    "c-\x7f",
    FULLWIDTH,
]
IDS = ["256", "10k", "nul", "newline", "ansi", "rlo", "lri", "nel", "del", "fullwidth"]


def mtls_style_par(driver: Driver, client_id: str) -> Any:
    """A PAR naming a client without an assertion (the mTLS path reads client_id first)."""
    return driver.http.post(driver.url("/par"), data={"client_id": client_id, "response_type": "code"})


@pytest.mark.parametrize("client_id", ODD_IDENTIFIERS, ids=IDS)
@pytest.mark.parametrize("path", ["/par", "/token", "/introspect", "/revoke"])
def test_an_odd_client_id_is_invalid_client(driver: Driver, client_id: str, path: str) -> None:
    """Issue 13 B8: a client_id over 255 characters was a 500 on PostgreSQL (the raw value reached
    the audit row); now invalid_client 401 (RFC 6749 A.1: 1..255 visible ASCII characters)."""
    response = driver.http.post(driver.url(path), data={"client_id": client_id, "token": "t"})
    assert response.status_code == 401, response.text[:300]
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("client_id", ODD_IDENTIFIERS, ids=IDS)
def test_an_odd_assertion_issuer_is_invalid_client(driver: Driver, client_id: str) -> None:
    """Issue 13 B8: the unverified iss of an assertion is checked before it reaches the record."""
    client = driver.add_client()
    form = {
        "client_assertion_type": JWT_BEARER,
        "client_assertion": driver.assertion(client, iss=client_id, sub=client_id),
    }
    response = driver.http.post(driver.url("/par"), data=form)
    assert response.status_code == 401, response.text[:300]
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("value", ODD_IDENTIFIERS, ids=IDS)
@pytest.mark.parametrize("claim", ["kid", "jti"])
def test_an_odd_kid_or_jti_is_invalid_client(driver: Driver, value: str, claim: str) -> None:
    """Issue 13 B8: the assertion's kid and jti."""
    client = driver.add_client()
    if claim == "kid":
        assertion = driver.assertion(client, header={"kid": value})
    else:
        assertion = driver.assertion(client, jti=value)
    response = driver.http.post(
        driver.url("/par"), data={"client_assertion_type": JWT_BEARER, "client_assertion": assertion}
    )
    if claim == "jti" and value == FULLWIDTH:  # any Unicode is a jti (RFC 7519 4.1.7): authenticated
        assert response.status_code == 400 and response.json()["error"] == "invalid_request", response.text
        return
    assert response.status_code == 401, response.text[:300]
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("value", ODD_IDENTIFIERS, ids=IDS)
@pytest.mark.parametrize("name", ["client_id", "request_uri"])
def test_an_odd_identifier_at_authorize_is_invalid_request(driver: Driver, value: str, name: str) -> None:
    """Issue 13 B8: the authorization page answers the safe error page, 400 invalid_request."""
    client = driver.add_client()
    response, flow = driver.par(client)
    assert response.status_code == 201
    query = {"client_id": client.client_id, "request_uri": flow.request_uri}
    query[name] = value if name == "client_id" else "urn:ietf:params:oauth:request_uri:" + value
    page = driver.http.get(driver.url("/authorize"), params=query)
    assert page.status_code == 400, page.text[:300]
    assert "invalid_request" in page.text


@pytest.mark.parametrize("value", ODD_IDENTIFIERS, ids=IDS)
@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token"])
def test_an_odd_code_or_refresh_token_is_invalid_grant(driver: Driver, value: str, grant: str) -> None:
    """Issue 13 B8: codes and refresh tokens (RFC 6749 A.11, A.17: visible ASCII)."""
    client = driver.add_client()
    form = {"grant_type": grant, "redirect_uri": client.redirect_uri, "code_verifier": "v" * 43}
    form["code" if grant == "authorization_code" else "refresh_token"] = value
    response = driver.token_request(client, form)
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("value", [*ODD_IDENTIFIERS, "u" * 300], ids=[*IDS, "300"])
def test_an_odd_user_name_is_refused_like_a_wrong_password(driver: Driver, value: str) -> None:
    """Issue 13 B8: the login form answers 400 'Wrong user name or password.'; no 500."""
    client = driver.add_client()
    _, flow = driver.par(client)
    browser = driver.browser()
    query = {"client_id": client.client_id, "request_uri": flow.request_uri}
    page = browser.get(driver.url("/authorize"), params=query)
    assert page.status_code == 200 and 'name="username"' in page.text
    answer = browser.submit(page, {"username": value, "password": PASSWORD})
    assert answer.status_code == 400, answer.text[:300]
    assert "Wrong user name or password." in answer.text
    browser.http.close()


def test_a_good_identifier_still_works(driver: Driver) -> None:
    """Positive control: a real client through the whole flow."""
    client = driver.add_client()
    _, tokens = driver.full_flow(client)
    assert tokens["token_type"] == "DPoP"


@pytest.mark.parametrize(
    "credential",
    [
        "[" * 10_000,
        '{"id":"x","rawId":"x","type":"public-key","response":{"clientDataJSON":"'
        + __import__("base64").urlsafe_b64encode(b"[" * 2000).decode().rstrip("=")
        + '","authenticatorData":"AA","signature":"AA"},"x":'
        + "[" * 40
        + "]" * 40
        + "}",
    ],
    ids=["deep-response", "deep-client-data"],
)
def test_a_deep_passkey_answer_is_refused(driver: Driver, credential: str) -> None:
    """Issue 13 B5: the posted WebAuthn response and its client data are bounded JSON too."""
    from tests.passkey_device import passkey_form

    client = driver.add_client()
    _, flow = driver.par(client)
    browser = driver.browser()
    query = {"client_id": client.client_id, "request_uri": flow.request_uri}
    page = browser.get(driver.url("/authorize"), params=query)
    form = passkey_form(page)
    answer = browser.http.post(browser.base + form.action, data={**form.fields, "credential": credential})
    assert answer.status_code == 400, answer.text[:300]
    assert 'role="alert"' in answer.text
    browser.http.close()
