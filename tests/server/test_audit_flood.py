"""Unauthenticated garbage does not cost one stored record each, and old records can be purged
without breaking `corridor audit verify` (issue 13 B4, design.md 5c)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from corridor.client import FapiClient
from corridor.store import schema as t
from corridor.transport.tls import DevTLS
from tests.client.test_client_flow import consent
from tests.support import Driver, RunningAS, postgres_database, running_as

CORRIDOR = [str(Path(sys.executable).parent / "corridor")]
PER_SOURCE = 3
WINDOW = 600.0
RETENTION_DAYS = 30


@pytest.fixture(params=["sqlite", "postgresql"])
def driver(request: pytest.FixtureRequest, tmp_path: Path, tls: DevTLS) -> Iterator[Driver]:
    """An AS of this test's own: these tests count and purge the whole trail."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'audit.db'}"
        else:
            url = stack.enter_context(postgres_database(request.getfixturevalue("postgres_admin")))
        running = stack.enter_context(
            running_as(
                tmp_path,
                tls,
                database_url=url,
                audit_refusals_per_source=PER_SOURCE,
                audit_refusal_window=WINDOW,
                audit_retention_days=RETENTION_DAYS,
            )
        )
        d = Driver(running)
        yield d
        d.http.close()


def records(running: RunningAS, event: str) -> list[dict[str, Any]]:
    with running.store.engine.connect() as conn:
        stmt = select(t.audit_records).where(t.audit_records.c.event == event).order_by(t.audit_records.c.id)
        return [dict(row) for row in conn.execute(stmt).mappings()]


def garbage_par(driver: Driver, n: int) -> None:
    for i in range(n):
        response = driver.http.post(driver.url("/par"), data={"client_id": f"nobody-{i}", "junk": "x" * 40})
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_garbage_from_one_source_costs_a_constant_number_of_records(driver: Driver) -> None:
    """300 unauthenticated refusals in one window: PER_SOURCE records, then one aggregate record
    counting the rest when the window closes (written by the server's periodic purge path)."""
    driver.as_.clock.advance(WINDOW - driver.now() % WINDOW)  # at the start of a window
    garbage_par(driver, 300)
    rows = records(driver.as_, "par")
    assert len(rows) == PER_SOURCE, [(r["outcome"], r["error"], r["client_id"], r["rule"]) for r in rows]
    assert [(r["outcome"], r["error"], r["client_id"]) for r in rows] == [
        ("refused", "invalid_client", f"nobody-{i}") for i in range(PER_SOURCE)
    ]
    driver.as_.clock.advance(WINDOW)
    assert driver.as_.server is not None
    driver.as_.server.purge()
    rows = records(driver.as_, "par")
    assert len(rows) == PER_SOURCE + 1
    aggregate = rows[-1]
    assert (aggregate["outcome"], aggregate["error"], aggregate["client_id"]) == (
        "aggregated",
        "invalid_client",
        None,
    )
    detail = json.loads(aggregate["detail"])["aggregate"]
    assert detail["count"] == 300 - PER_SOURCE and detail["source"] == "127.0.0.1"
    assert detail["until"] - detail["from"] == WINDOW
    # The next window starts afresh: again PER_SOURCE individual records, nothing more yet.
    garbage_par(driver, 10)
    assert len(records(driver.as_, "par")) == 2 * PER_SOURCE + 1
    with driver.as_.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.audit_records)).scalar_one() == (
            2 * PER_SOURCE + 1
        )


def test_garbage_at_the_authorization_page_and_userinfo_is_sampled_too(driver: Driver) -> None:
    driver.as_.clock.advance(WINDOW - driver.now() % WINDOW)
    for i in range(20):
        page = driver.http.get(driver.url("/authorize"), params={"client_id": f"x{i}", "request_uri": "y"})
        assert page.status_code == 400
        info = driver.http.get(driver.url("/userinfo"), headers={"Authorization": f"DPoP garbage{i}"})
        assert info.status_code == 401
    assert [r["error"] for r in records(driver.as_, "authorize")] == ["invalid_request"] * PER_SOURCE
    assert len(records(driver.as_, "userinfo")) == PER_SOURCE


def test_an_authenticated_clients_refusals_stay_individual(driver: Driver) -> None:
    client = driver.add_client()
    for _ in range(10):
        response, _flow = driver.par(client, drop=("code_challenge",))
        assert response.status_code == 400, response.text
    rows = records(driver.as_, "par")
    assert len(rows) == 10
    assert {(r["outcome"], r["client_id"]) for r in rows} == {("refused", client.client_id)}


def audit(running: RunningAS, *args: str, retention: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    if retention:
        env["CORRIDOR_AUDIT_RETENTION_DAYS"] = str(RETENTION_DAYS)
    return subprocess.run(
        [*CORRIDOR, "audit", *args, "--database", running.store.url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_retention_purges_old_records_and_the_trail_still_verifies(driver: Driver) -> None:
    client = driver.add_client()
    driver.full_flow(client)
    assert audit(driver.as_, "checkpoint").returncode == 0
    assert driver.as_.server is not None
    writer = driver.as_.server.audit.writer
    before = [r for r in driver.as_.store.audit.records() if r["writer"] == writer]
    signed_at = before[-1]["seq"]
    driver.full_flow(client)  # after the checkpoint: kept however old, nothing vouches for a cut there
    driver.as_.clock.advance(RETENTION_DAYS * 86_400 - 60)
    driver.as_.server.purge()
    assert next(r for r in driver.as_.store.audit.records() if r["writer"] == writer)["seq"] == 1  # not yet
    driver.as_.clock.advance(120)
    driver.as_.server.purge()
    kept = [r for r in driver.as_.store.audit.records() if r["writer"] == writer]
    assert kept[0]["seq"] == signed_at + 1 and kept[0]["prev_hash"] == before[-1]["hash"]
    result = audit(driver.as_, "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"{writer}: {len(kept)} records, intact (records 1-{signed_at} purged by retention)" in result.stdout
    )
    # The same cut with retention off is a deletion.
    off = audit(driver.as_, "verify", retention=False)
    assert off.returncode == 1
    assert (
        f"record(s) 1-{signed_at} missing before it (deleted; a checkpoint signed that record" in off.stdout
    )
    # A kept record edited after the purge still shows.
    victim = kept[len(kept) // 2]
    with driver.as_.store.engine.begin() as conn:
        conn.execute(
            update(t.audit_records).where(t.audit_records.c.id == victim["id"]).values(outcome="forged")
        )
    tampered = audit(driver.as_, "verify")
    assert tampered.returncode == 1
    assert (
        f"{writer}: broken at record id {victim['id']} (#{victim['seq']}): "
        "content does not match its hash (edited)" in tampered.stdout
    )


def test_retention_purges_the_signed_messages_of_purged_records_only(driver: Driver) -> None:
    """Issue 17: a request object and a JARM response go with the records that name them; those of
    records kept (after the newest checkpoint before the cut) stay, so a pack still carries them."""

    def signed_flow() -> list[str]:
        registered = driver.add_client(require_signed_request_object=True, response_modes=("jwt",))
        client = FapiClient(
            driver.issuer,
            registered.client_id,
            redirect_uri=registered.redirect_uri,
            key=registered.key,
            ca_file=str(driver.as_.tls.ca_file),
            clock=driver.as_.clock,  # the AS's clock is moved between the two flows
            signed_request=True,
            response_mode="jwt",
        )
        try:
            url, handle = client.start("openid")
            tokens = client.finish(consent(driver, url), handle)
        finally:
            client.close()
        assert handle.request_object and tokens.authorization_response
        return [
            hashlib.sha256(j.encode()).hexdigest()
            for j in (handle.request_object, tokens.authorization_response)
        ]

    old = signed_flow()
    assert audit(driver.as_, "checkpoint").returncode == 0
    driver.as_.clock.advance(60)
    new = signed_flow()
    assert driver.as_.server is not None
    driver.as_.clock.advance(RETENTION_DAYS * 86_400 - 30)
    driver.as_.server.purge()
    assert all(driver.as_.store.messages.get(h) is None for h in old)
    assert all(driver.as_.store.messages.get(h) is not None for h in new)
