"""Issue 13 D2: `corridor client remove` revokes every grant and token of the client at once.

The command runs as its own process against a running AS on the same database, as an operator
runs it. That AS keeps registrations cached for 60 s (as another instance of a cluster may, up
to ``registration_cache_seconds``), so it still knows the client: what stops its tokens is the
revocation, not the missing registration."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from corridor.core.randomness import new_id
from corridor.store import schema
from corridor.transport.tls import DevTLS
from tests.pki import TestPKI
from tests.support import Client, Driver, decode_jwt, running_as

CORRIDOR = [sys.executable, "-m", "corridor.cli"]


@pytest.fixture(scope="module")
def cached_as(
    tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, pki: TestPKI, database: str
) -> Iterator[Driver]:
    data_dir = tmp_path_factory.mktemp("as-cached")
    with running_as(
        data_dir, tls, mtls_ca_file=str(pki.ca_file), database_url=database, registration_cache_seconds=60
    ) as running:
        driver = Driver(running)
        yield driver
        driver.http.close()


def _userinfo(driver: Driver, client: Client, token: str) -> int:
    proof = driver.proof(client, "GET", driver.htu("/userinfo"), access_token=token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    return driver.http.get(driver.url("/userinfo"), headers=headers).status_code


def _refresh(driver: Driver, client: Client, refresh_token: str) -> tuple[int, str]:
    response = driver.token_request(client, {"grant_type": "refresh_token", "refresh_token": refresh_token})
    return response.status_code, response.json().get("error", "")


def test_client_remove_revokes_every_grant_and_token_of_the_client(cached_as: Driver, database: str) -> None:
    """Issue 13 D2, RFC 7009 2.1: after removal the client's tokens are dead everywhere the AS
    answers (introspection inactive, UserInfo 401, refresh invalid_grant); other clients' live."""
    driver = cached_as
    resource = f"https://rs-{new_id()[:8]}.example.org/api"
    rs_client = driver.add_client()
    driver.as_.store.clients.add_resource_server(resource, "RS", [], rs_client.client_id, 0.0)
    client, bystander = driver.add_client(), driver.add_client()
    issued = [driver.full_flow(client, extra={"resource": resource})[1] for _ in range(2)]
    _, kept = driver.full_flow(bystander, extra={"resource": resource})
    for tokens in [*issued, kept]:
        assert driver.introspect(rs_client, tokens["access_token"]).json()["active"] is True
    assert _userinfo(driver, client, issued[0]["access_token"]) == 200

    removed = subprocess.run(
        [*CORRIDOR, "client", "remove", client.client_id, "--data-dir", str(driver.as_.data_dir)],
        env={**os.environ, "CORRIDOR_DATABASE_URL": database},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert removed.returncode == 0, removed.stderr

    for tokens in issued:
        assert driver.introspect(rs_client, tokens["access_token"]).json() == {"active": False}
        assert _userinfo(driver, client, tokens["access_token"]) == 401
        assert _refresh(driver, client, tokens["refresh_token"]) == (400, "invalid_grant")
    with driver.as_.store.engine.connect() as conn:
        grants = conn.execute(
            select(schema.grants.c.revoked_at, schema.grants.c.revoked_reason).where(
                schema.grants.c.client_id == client.client_id
            )
        ).all()
        tokens_left = conn.execute(
            select(schema.access_tokens.c.jti).where(
                schema.access_tokens.c.client_id == client.client_id,
                schema.access_tokens.c.revoked_at.is_(None),
            )
        ).all()
    assert len(grants) == 2 and all(at is not None and why == "client_removed" for at, why in grants)
    assert tokens_left == []
    assert driver.as_.store.clients.get(client.client_id) is None
    assert removed.stdout.strip() == f"removed {client.client_id} (revoked 2 grants, 2 access tokens)"
    # Positive control: the other client's grant is untouched.
    assert driver.introspect(rs_client, kept["access_token"]).json()["active"] is True
    assert _userinfo(driver, bystander, kept["access_token"]) == 200
    assert _refresh(driver, bystander, kept["refresh_token"])[0] == 200
    assert decode_jwt(kept["access_token"])[1]["client_id"] == bystander.client_id


def test_removing_through_the_store_function_is_one_transaction(driver: Driver) -> None:
    """The store function the command calls, in the server's own process: the client is unknown
    at once (its own change, no cache), and its tokens are inactive to the resource server."""
    rs_client = driver.add_client()
    resource = f"https://rs-{new_id()[:8]}.example.org/api"
    driver.as_.store.clients.add_resource_server(resource, "RS", [], rs_client.client_id, 0.0)
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"resource": resource})
    assert driver.as_.store.clients.remove(client.client_id, driver.now()) == (1, 1)
    assert driver.as_.store.clients.remove(client.client_id, driver.now()) is None
    assert driver.introspect(rs_client, tokens["access_token"]).json() == {"active": False}
    assert _userinfo(driver, client, tokens["access_token"]) == 401
    response = driver.token_request(
        client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
