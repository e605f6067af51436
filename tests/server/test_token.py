"""The token endpoint: AS9, AS11, AS15, AS17, AS25, AS29, D18, D19, RFC 6749 4.1.3."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from corridor.core.randomness import token_hash
from corridor.store import schema
from tests.support import RESOURCE, Client, Driver, Flow, decode_jwt


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"


def authorized(driver: Driver, **extra: str) -> tuple[Client, Flow]:
    client = driver.add_client()
    response, flow = driver.par(client, extra=extra or None)
    assert response.status_code == 201
    driver.authorize(client, flow)
    assert flow.code
    return client, flow


def test_password_grant_is_refused(driver: Driver) -> None:
    """AS9 / FAPI2 5.3.2.1-2."""
    client = driver.add_client()
    response = driver.token_request(client, {"grant_type": "password", "username": "u", "password": "p"})
    assert_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize(
    # client_credentials is served since issue 20 (a code-flow client asking for it gets
    # unauthorized_client: tests/resource/test_client_credentials.py).
    "grant_type",
    [
        "urn:ietf:params:oauth:grant-type:device_code",
        "implicit",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ],
)
def test_other_grants_are_refused(driver: Driver, grant_type: str) -> None:
    response = driver.token_request(driver.add_client(), {"grant_type": grant_type})
    assert_error(response, 400, "unsupported_grant_type")


def test_token_request_without_client_auth(driver: Driver) -> None:
    """AS10: client_id only -> 401 invalid_client."""
    client, flow = authorized(driver)
    response = driver.redeem(client, flow, auth=False, form={"client_id": client.client_id})
    assert_error(response, 401, "invalid_client")


def test_no_sender_constraint_no_token(driver: Driver) -> None:
    """AS11 / D19 / FAPI2 5.3.2.1-4: without DPoP there is no (bearer) token."""
    client, flow = authorized(driver)
    response = driver.redeem(client, flow, dpop=False)
    assert_error(response, 400, "invalid_dpop_proof")
    assert "access_token" not in response.text


def test_code_expires_after_60_seconds(driver: Driver) -> None:
    """AS17 / FAPI2 5.3.2.1-11: redeeming at t+61 s fails."""
    client, flow = authorized(driver)
    driver.as_.clock.advance(61)
    assert_error(driver.redeem(client, flow), 400, "invalid_grant")


def test_code_valid_just_inside_60_seconds(driver: Driver) -> None:
    client, flow = authorized(driver)
    driver.as_.clock.advance(58)
    assert driver.redeem(client, flow).status_code == 200


@pytest.mark.parametrize("verifier", ["wrong", None])
def test_pkce_verifier_checked(driver: Driver, verifier: str | None) -> None:
    """AS25: a wrong or missing code_verifier -> invalid_grant."""
    client, flow = authorized(driver)
    form = {"grant_type": "authorization_code", "code": flow.code, "redirect_uri": client.redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier * 11
    assert_error(driver.token_request(client, form), 400, "invalid_grant")


def test_redirect_uri_must_match(driver: Driver) -> None:
    """RFC 6749 4.1.3."""
    client, flow = authorized(driver)
    response = driver.redeem(client, flow, form={"redirect_uri": "https://client.example.org/other"})
    assert_error(response, 400, "invalid_grant")


def test_code_bound_to_client(driver: Driver) -> None:
    _client, flow = authorized(driver)
    thief = driver.add_client()
    assert_error(driver.redeem(thief, flow), 400, "invalid_grant")


def test_unknown_code(driver: Driver) -> None:
    client = driver.add_client()
    flow = Flow(verifier="v" * 43, state="s", code="not-a-code")
    assert_error(driver.redeem(client, flow), 400, "invalid_grant")


def test_code_reuse_is_refused_and_revokes_the_grant(driver: Driver) -> None:
    """AS29 / FAPI2 5.3.2.2-9, RFC 6749 4.1.2: second redemption fails; the first tokens die."""
    client, flow = authorized(driver)
    first = driver.redeem(client, flow)
    assert first.status_code == 200
    tokens = first.json()
    assert driver.introspect(client, tokens["access_token"]).json()["active"] is True
    assert_error(driver.redeem(client, flow), 400, "invalid_grant")
    assert driver.introspect(client, tokens["access_token"]).json() == {"active": False}
    refresh = driver.token_request(
        client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert_error(refresh, 400, "invalid_grant")
    store = driver.as_.store
    with store.engine.connect() as conn:
        code = (
            conn.execute(
                select(schema.authorization_codes).where(
                    schema.authorization_codes.c.code_hash == token_hash(flow.code)
                )
            )
            .mappings()
            .one()
        )
        grant = (
            conn.execute(select(schema.grants).where(schema.grants.c.id == code["grant_id"])).mappings().one()
        )
    assert grant["revoked_reason"] == "code_reuse"


def _grant_of_code(driver: Driver, code: str) -> dict[str, Any]:
    with driver.as_.store.engine.connect() as conn:
        grant_id = conn.execute(
            select(schema.authorization_codes.c.grant_id).where(
                schema.authorization_codes.c.code_hash == token_hash(code)
            )
        ).scalar_one()
        return dict(
            conn.execute(select(schema.grants).where(schema.grants.c.id == grant_id)).mappings().one()
        )


def test_another_clients_reuse_of_a_used_code_does_not_revoke_the_victims_grant(driver: Driver) -> None:
    """Issue 13 D1, RFC 6749 4.1.3 before 4.1.2: the code is bound to its client before reuse is
    judged; another (authenticated) client's attempt is invalid_grant and changes nothing, only
    the code's own client revokes the grant by presenting it again."""
    victim, flow = authorized(driver)
    thief = driver.add_client()
    assert_error(driver.redeem(thief, flow), 400, "invalid_grant")  # unused: not consumed by the thief
    first = driver.redeem(victim, flow)
    assert first.status_code == 200, first.text
    tokens = first.json()
    reuse = driver.redeem(thief, flow)
    assert_error(reuse, 400, "invalid_grant")
    assert reuse.json()["error_description"] == "the code was issued to another client"
    grant = _grant_of_code(driver, flow.code)
    assert grant["revoked_at"] is None and grant["revoked_reason"] is None
    assert driver.introspect(victim, tokens["access_token"]).json()["active"] is True
    refresh = driver.token_request(
        victim, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 200, refresh.text
    with driver.as_.store.engine.connect() as conn:
        reuse_records = conn.execute(
            select(schema.audit_records).where(
                schema.audit_records.c.grant_id == grant["id"],
                schema.audit_records.c.event == "code.reuse_detected",
            )
        ).all()
    assert reuse_records == []
    # The code's own client presenting it again still revokes everything (RFC 6749 4.1.2).
    assert_error(driver.redeem(victim, flow), 400, "invalid_grant")
    assert _grant_of_code(driver, flow.code)["revoked_reason"] == "code_reuse"
    assert driver.introspect(victim, tokens["access_token"]).json() == {"active": False}


def test_token_response_shape(driver: Driver) -> None:
    """D18: token_type DPoP, cnf.jkt, no-store; AS11."""
    client, flow = authorized(driver)
    response = driver.redeem(client, flow)
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "DPoP"
    assert decode_jwt(body["access_token"])[1]["cnf"]["jkt"] == client.dpop_key.thumbprint()
    assert response.headers["dpop-nonce"]


def test_refresh_is_not_rotated_and_rebinds_to_the_proof_key(driver: Driver) -> None:
    """AS15 / FAPI2 5.3.2.1-9: no new refresh token; the old one keeps working."""
    client, flow = authorized(driver)
    tokens = driver.redeem(client, flow).json()
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    first = driver.token_request(client, form)
    assert first.status_code == 200, first.text
    assert "refresh_token" not in first.json()
    second = driver.token_request(client, form)
    assert second.status_code == 200
    assert second.json()["access_token"] != first.json()["access_token"]
    assert decode_jwt(second.json()["access_token"])[1]["cnf"]["jkt"] == client.dpop_key.thumbprint()


def test_refresh_token_bound_to_client(driver: Driver) -> None:
    """D18: the RT is bound to the client, not to the DPoP key."""
    client, flow = authorized(driver)
    tokens = driver.redeem(client, flow).json()
    other = driver.add_client()
    response = driver.token_request(
        other, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert_error(response, 400, "invalid_grant")


def test_refresh_may_narrow_scope_not_widen(driver: Driver) -> None:
    client, flow = authorized(driver)
    tokens = driver.redeem(client, flow).json()
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    narrow = driver.token_request(client, {**form, "scope": "accounts"})
    assert narrow.json()["scope"] == "accounts"
    assert_error(driver.token_request(client, {**form, "scope": "accounts payments"}), 400, "invalid_scope")


def test_refresh_after_grant_expiry(driver: Driver) -> None:
    client, flow = authorized(driver)
    tokens = driver.redeem(client, flow).json()
    assert driver.as_.server is not None
    driver.as_.clock.advance(driver.as_.server.settings.grant_lifetime + 1)
    response = driver.token_request(
        client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert_error(response, 400, "invalid_grant")


def test_resource_narrowing_at_token(driver: Driver) -> None:
    """RFC 8707 2.2: the token request may name a granted resource; others are invalid_target."""
    client, flow = authorized(driver, resource=RESOURCE)
    ok = driver.redeem(client, flow)
    assert decode_jwt(ok.json()["access_token"])[1]["aud"] == RESOURCE
    form = {"grant_type": "refresh_token", "refresh_token": ok.json()["refresh_token"]}
    assert_error(
        driver.token_request(client, {**form, "resource": "https://other.example"}), 400, "invalid_target"
    )


def test_missing_parameters(driver: Driver) -> None:
    client = driver.add_client()
    assert_error(driver.token_request(client, {}), 400, "invalid_request")
    assert_error(driver.token_request(client, {"grant_type": "authorization_code"}), 400, "invalid_request")
    assert_error(driver.token_request(client, {"grant_type": "refresh_token"}), 400, "invalid_request")


def test_resource_at_code_redemption(driver: Driver) -> None:
    """RFC 8707 2.2: an ungranted resource at the code exchange is invalid_target, and the code
    survives for a corrected retry; a granted one narrows the audience."""
    client, flow = authorized(driver)  # no resource at PAR: nothing to narrow to
    assert_error(driver.redeem(client, flow, form={"resource": RESOURCE}), 400, "invalid_target")
    assert driver.redeem(client, flow).status_code == 200
