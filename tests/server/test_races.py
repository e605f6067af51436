"""Single-use artifacts and revocation under real concurrency: OS processes redeem one code at
once, or refresh while the grant is revoked."""

from __future__ import annotations

import json
import multiprocessing
import ssl
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
from sqlalchemy import select

from corridor.core.randomness import token_hash
from corridor.store import schema
from tests.support import Driver, decode_jwt

ROUNDS = 10


def _post_after_barrier(
    url: str, form: dict[str, str], headers: dict[str, str], ca: str, barrier: Any
) -> tuple[int, Any]:
    with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=30) as http:
        http.get(url.rsplit("/", 1)[0] + "/jwks")  # connect before the barrier
        barrier.wait()
        response = http.post(url, data=form, headers=headers)
        return response.status_code, response.json()


def test_concurrent_code_redemption_exactly_one_wins(driver: Driver) -> None:
    """RFC 6749 4.1.2, FAPI2 5.3.2.2-9: one winner; the loser's attempt revokes the winner's tokens."""
    context = multiprocessing.get_context("spawn")
    ca = str(driver.as_.tls.ca_file)
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        for _ in range(ROUNDS):
            client = driver.add_client()
            response, flow = driver.par(client)
            assert response.status_code == 201
            driver.authorize(client, flow)
            barrier = manager.Barrier(2)
            futures = []
            for _ in range(2):
                form = {
                    **driver.client_auth(client),
                    "grant_type": "authorization_code",
                    "code": flow.code,
                    "redirect_uri": client.redirect_uri,
                    "code_verifier": flow.verifier,
                }
                headers = {"DPoP": driver.proof(client, "POST", driver.url("/token"))}
                futures.append(
                    pool.submit(_post_after_barrier, driver.url("/token"), form, headers, ca, barrier)
                )
            results = sorted((f.result(timeout=60) for f in futures), key=lambda r: r[0])
            assert [status for status, _ in results] == [200, 400], results
            assert results[1][1]["error"] == "invalid_grant"
            winner = results[0][1]
            # Database state, not only status codes: one consumption, the grant revoked for reuse,
            # and exactly one access token minted.
            with driver.as_.store.engine.connect() as conn:
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
                    conn.execute(select(schema.grants).where(schema.grants.c.id == code["grant_id"]))
                    .mappings()
                    .one()
                )
                tokens = conn.execute(
                    select(schema.access_tokens).where(schema.access_tokens.c.grant_id == code["grant_id"])
                ).all()
            assert code["consumed_at"] is not None
            assert grant["revoked_reason"] == "code_reuse"
            assert len(tokens) == 1
            assert driver.introspect(client, winner["access_token"]).json() == {"active": False}


def _post_form_after_barrier(
    url: str, form: dict[str, str], headers: dict[str, str], ca: str, barrier: Any
) -> tuple[int, str]:
    with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=30) as http:
        http.get(url.rsplit("/", 1)[0] + "/jwks")  # connect before the barrier
        barrier.wait()
        response = http.post(url, data=form, headers=headers)
        return response.status_code, response.text


REFRESHERS = 2


def test_refresh_racing_revocation_never_mints_for_a_revoked_grant(driver: Driver) -> None:
    """Issue 13 D3, RFC 7009 2.1, design.md 5b: a refresh's revocation check and its mint are one
    transaction with the grant locked, so a revocation racing it is ordered wholly before (the
    refresh is refused) or wholly after (the new token is one of those it revokes). Every round,
    REFRESHERS processes refresh while another revokes the grant at /revoke. The order that counts
    is the order the transactions committed in, which the server's own audit chain records (one
    writer, seq taken under the chain's head lock inside each transaction); the request times the
    rows carry are taken when each request starts, so they cannot order two transactions."""
    context = multiprocessing.get_context("spawn")
    ca = str(driver.as_.tls.ca_file)
    server = driver.as_.server
    assert server is not None
    writer = server.audit.writer
    with context.Manager() as manager, ProcessPoolExecutor(REFRESHERS + 1, mp_context=context) as pool:
        for _ in range(2 * ROUNDS):
            client = driver.add_client()
            _flow, tokens = driver.full_flow(client)
            first_jti = decode_jwt(tokens["access_token"])[1]["jti"]
            barrier = manager.Barrier(REFRESHERS + 1)
            revoke_form = {**driver.client_auth(client), "token": tokens["refresh_token"]}
            futures = [
                pool.submit(_post_form_after_barrier, driver.url("/revoke"), revoke_form, {}, ca, barrier)
            ]
            for _ in range(REFRESHERS):
                form = {
                    **driver.client_auth(client),
                    "grant_type": "refresh_token",
                    "refresh_token": tokens["refresh_token"],
                }
                headers = {"DPoP": driver.proof(client, "POST", driver.htu("/token"))}
                futures.append(
                    pool.submit(_post_form_after_barrier, driver.url("/token"), form, headers, ca, barrier)
                )
            (revoked, _), *refreshes = [f.result(timeout=60) for f in futures]
            assert revoked == 200
            minted = {
                decode_jwt(json.loads(body)["access_token"])[1]["jti"]
                for status, body in refreshes
                if status == 200
            }
            for status, body in refreshes:
                assert status == 200 or (status, json.loads(body)["error"]) == (400, "invalid_grant"), body
            with driver.as_.store.engine.connect() as conn:
                grant = (
                    conn.execute(select(schema.grants).where(schema.grants.c.client_id == client.client_id))
                    .mappings()
                    .one()
                )
                rows = conn.execute(
                    select(schema.access_tokens.c.jti).where(schema.access_tokens.c.grant_id == grant["id"])
                ).scalars()
                jtis = set(rows)
                records = (
                    conn.execute(
                        select(schema.audit_records)
                        .where(schema.audit_records.c.grant_id == grant["id"])
                        .where(schema.audit_records.c.writer == writer)
                        .order_by(schema.audit_records.c.seq)
                    )
                    .mappings()
                    .all()
                )
            assert grant["revoked_reason"] == "revoked_by_client"
            assert jtis == {first_jti} | minted  # every 200 is a row; no row without its answer
            events = [(r["event"], r["outcome"], r["token_jti"]) for r in records]
            revocation = events.index(("revocation.grant", "revoked", None))
            after = [e for e in events[revocation + 1 :] if e[1] == "issued"]
            assert after == [], f"minted after the grant's revocation: {after}"
            issued_before = {jti for event, outcome, jti in events[:revocation] if outcome == "issued"}
            assert jtis <= issued_before
