"""The audit trail (every decision, with the rule when refused) and credential hygiene (K6, logs)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from corridor.core.randomness import token_hash
from corridor.store import schema
from tests.support import RESOURCE, Driver


def test_every_decision_of_a_flow_is_recorded(driver: Driver) -> None:
    client = driver.add_client()
    details = [{"type": "account_information", "actions": ["read"], "permissions": ["balances"]}]
    driver.full_flow(client, extra={"resource": RESOURCE, "authorization_details": json.dumps(details)})
    records = [r for r in driver.as_.store.audit.records() if r["client_id"] == client.client_id]
    events = [(r["event"], r["outcome"]) for r in records]
    assert events == [
        ("par", "accepted"),
        ("login", "succeeded"),
        ("consent", "shown"),  # the approval surface (issue 8)
        ("consent", "granted"),
        ("code", "issued"),
        ("token.authorization_code", "issued"),
    ]
    assert json.loads(records[2]["detail"])["interaction"] == json.loads(records[3]["detail"])["interaction"]
    records = records[:2] + records[3:]  # the decisions, as before
    grant_id = records[-1]["grant_id"]
    assert grant_id and all(r["grant_id"] == grant_id for r in records[2:])
    token = records[-1]
    assert token["issuer"] == driver.issuer
    assert token["user_id"] and token["scope"] == "openid accounts"
    assert token["sender_constraint"] == "dpop" and token["key_thumbprint"] == client.dpop_key.thumbprint()
    assert token["token_jti"] and token["request_id"]
    consent = records[2]
    assert consent["redirect_uri"] == client.redirect_uri
    assert json.loads(consent["authorization_details"]) == details
    assert json.loads(consent["resource"]) == [RESOURCE]
    # One request id per HTTP request: consent and code come from the same POST.
    assert records[2]["request_id"] == records[3]["request_id"]
    assert len({r["request_id"] for r in records}) == 4


def test_refusals_are_recorded_with_their_rule(driver: Driver) -> None:
    client = driver.add_client()
    driver.par(client, extra={"client_assertion": driver.assertion(client, aud=driver.url("/token"))})
    driver.par(client, extra={"code_challenge_method": "plain"})
    refused = [r for r in driver.as_.store.audit.records() if r["client_id"] == client.client_id]
    assert [(r["event"], r["outcome"], r["error"], r["rule"]) for r in refused] == [
        ("par", "refused", "invalid_client", "FAPI2 5.3.2.1-8"),
        ("par", "refused", "invalid_request", "FAPI2 5.3.2.2-5"),
    ]


def test_denial_reuse_and_revocation_are_recorded(driver: Driver) -> None:
    client = driver.add_client()
    _, denied = driver.par(client)
    driver.authorize(client, denied, decision="deny")
    flow, tokens = driver.full_flow(client)
    driver.redeem(client, flow)
    driver.http.post(
        driver.url("/revoke"), data={**driver.client_auth(client), "token": tokens["refresh_token"]}
    )
    events = [
        (r["event"], r["outcome"])
        for r in driver.as_.store.audit.records()
        if r["client_id"] == client.client_id
    ]
    assert ("consent", "denied") in events
    assert ("code.reuse_detected", "revoked") in events
    assert ("revocation.grant", "revoked") in events


def test_credentials_have_at_least_128_bits(driver: Driver) -> None:
    """K6 / FAPI2 5.4.1-4: codes, refresh tokens, request_uri references and nonces are
    >= 22 base64url characters of randomness and never repeat."""
    client = driver.add_client()
    seen: set[str] = set()
    for _ in range(3):
        flow, tokens = driver.full_flow(client)
        values = [
            flow.code,
            tokens["refresh_token"],
            flow.request_uri.rsplit(":", 1)[1],
            driver.fresh_nonce(),
        ]
        for value in values[:3]:
            assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", value), value
            assert value not in seen
            seen.add(value)
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", values[3])


def test_store_keeps_only_hashes_of_credentials(driver: Driver) -> None:
    client = driver.add_client()
    flow, tokens = driver.full_flow(client)
    # Every row of every table, on either database ...
    with driver.as_.store.engine.connect() as conn:
        raw = "\n".join(
            repr(tuple(row)) for table in schema.metadata.sorted_tables for row in conn.execute(select(table))
        ).encode()
    # ... and on SQLite the file itself (free pages and the WAL included).
    database = make_url(driver.as_.store.url).database
    if driver.as_.store.dialect == "sqlite" and database:
        path = Path(database)
        raw += path.read_bytes() + (
            path.with_suffix(".db-wal").read_bytes() if path.with_suffix(".db-wal").exists() else b""
        )
    for secret in (flow.code, tokens["refresh_token"], flow.request_uri.rsplit(":", 1)[1]):
        assert secret.encode() not in raw
        assert token_hash(secret).encode() in raw


def test_no_secrets_in_logs(driver: Driver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = driver.add_client()
    flow, tokens = driver.full_flow(client)
    driver.redeem(client, flow)  # a refused reuse is logged too
    # What the server side logs (the test's own HTTP client logs are not the server's).
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("corridor", "uvicorn")))
    assert "POST /token 400" in text  # the access log line is there, without query strings
    assert "token.authorization_code" in text  # the audit log line is there
    for secret in (flow.code, tokens["refresh_token"], tokens["access_token"], flow.verifier):
        assert secret not in text


def test_userinfo_decisions_are_recorded(driver: Driver) -> None:
    client = driver.add_client()
    _, tokens = driver.full_flow(client)
    token = tokens["access_token"]
    ok = driver.http.get(
        driver.url("/userinfo"),
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": driver.proof(client, "GET", driver.url("/userinfo"), access_token=token),
        },
    )
    bearer = driver.http.get(driver.url("/userinfo"), headers={"Authorization": f"Bearer {token}"})
    assert (ok.status_code, bearer.status_code) == (200, 401)
    records = [
        r
        for r in driver.as_.store.audit.records()
        if r["event"] == "userinfo" and r["client_id"] == client.client_id
    ]
    assert [(r["outcome"], r["error"], r["rule"]) for r in records] == [
        ("allowed", None, None),
        ("refused", "invalid_token", "RFC 9449 7.2"),
    ]
    assert records[0]["key_thumbprint"] == client.dpop_key.thumbprint()
