"""Single-use artifacts under real concurrency: two OS processes redeem one code at once."""

from __future__ import annotations

import multiprocessing
import ssl
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
from sqlalchemy import select

from corridor.core.randomness import token_hash
from corridor.store import schema
from tests.support import Driver

ROUNDS = 10


def _post_after_barrier(
    url: str, form: dict[str, str], headers: dict[str, str], ca: str, barrier: Any
) -> tuple:  # type: ignore[type-arg]
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
            with driver.as_.store.read() as conn:
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
