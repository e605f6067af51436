"""Issue 18 observability, through real HTTP on both databases: /healthz and /readyz on the main
listener, and the Prometheus metrics listener scraped after real flows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from corridor.core.rules import Rule
from corridor.store.sql import database_url
from corridor.transport.tls import DevTLS
from tests.pki import TestPKI
from tests.support import RESOURCE, Driver, RunningAS, running_as

READINESS_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def as_server(
    tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, pki: TestPKI, database: str
) -> Iterator[RunningAS]:
    """This module's AS (both databases), with its metrics listener."""
    with running_as(
        tmp_path_factory.mktemp("as"),
        tls,
        mtls_ca_file=str(pki.ca_file),
        database_url=database,
        metrics=True,
        readiness_timeout=READINESS_TIMEOUT,
    ) as running:
        running.store.clients.add_resource_server(RESOURCE, "Test API", ["accounts", "payments"], None, 0.0)
        yield running


def scrape(running: RunningAS) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of one scrape, by name and labels."""
    text = httpx.get(running.metrics_url, timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def audit_count(driver: Driver) -> int:
    return len(driver.as_.store.audit.records())


# -- health and readiness -------------------------------------------------------------------


def test_healthz_and_readyz_answer_without_audit_or_credentials(driver: Driver) -> None:
    before = audit_count(driver)
    for path, body in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
        response = driver.http.get(driver.url(path))  # no client certificate, no credentials
        assert response.status_code == 200, response.text
        assert response.json() == body
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert response.headers["x-content-type-options"] == "nosniff"
    assert audit_count(driver) == before  # probes are not evidence
    # Probes are not throttled: many in a row all answer.
    assert {driver.http.get(driver.url("/readyz")).status_code for _ in range(30)} == {200}
    # The metrics listener serves the same probes over plain HTTP.
    base = driver.as_.metrics_url.removesuffix("/metrics")
    assert httpx.get(base + "/healthz").json() == {"status": "ok"}
    assert httpx.get(base + "/readyz").json() == {"status": "ready"}
    assert httpx.get(base + "/nothing").status_code == 404


def test_readyz_is_503_within_its_bound_while_the_database_hangs(
    tmp_path: Path, tls: DevTLS, postgres_url: str
) -> None:
    """A table lock stands for a hung database: the read never answers. /readyz says 503 within
    readiness_timeout, concurrent probes share the one read, /healthz is not held up, and the
    readiness comes back once the database answers."""
    with running_as(tmp_path, tls, database_url=postgres_url, readiness_timeout=READINESS_TIMEOUT) as running:
        driver = Driver(running)
        assert driver.http.get(driver.url("/readyz")).status_code == 200
        locker = create_engine(database_url(postgres_url), poolclass=NullPool)
        with locker.connect() as conn:
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("LOCK TABLE signing_keys IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with ThreadPoolExecutor(6) as pool:
                probes = list(pool.map(lambda _: driver.http.get(driver.url("/readyz")), range(6)))
            elapsed = time.monotonic() - started
            assert [p.status_code for p in probes] == [503] * 6
            assert probes[0].json() == {"status": "unavailable", "reason": "database"}
            assert probes[0].headers["cache-control"] == "no-store"
            assert elapsed < READINESS_TIMEOUT + 3, elapsed
            quick = time.monotonic()
            assert driver.http.get(driver.url("/healthz")).status_code == 200
            assert time.monotonic() - quick < 1.0  # the event loop is free
            conn.exec_driver_sql("ROLLBACK")
        locker.dispose()
        deadline = time.monotonic() + 10
        while driver.http.get(driver.url("/readyz")).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)


# -- metrics --------------------------------------------------------------------------------


def test_metrics_move_after_a_flow(driver: Driver) -> None:
    before = scrape(driver.as_)
    client = driver.add_client()
    flow, tokens = driver.full_flow(client)
    assert tokens["token_type"] == "DPoP"
    response, _ = driver.par(client, extra={"code_challenge_method": "plain"})
    assert response.status_code == 400
    browser = driver.browser()
    _, pushed = driver.par(client)
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": pushed.request_uri}
    )
    wrong = browser.submit(page, {"username": driver.add_user(), "password": "not the password"})
    assert wrong.status_code == 400
    assert driver.http.get(driver.url("/no/such/" + client.client_id)).status_code == 404
    after = scrape(driver.as_)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "corridor_http_requests_total"
    assert moved(requests, endpoint="/par", status="201", error="") == 2
    assert moved(requests, endpoint="/par", status="400", error="invalid_request") == 1
    assert moved(requests, endpoint="/token", status="200", error="") == 1
    assert moved(requests, endpoint="/authorize", status="303", error="") == 2
    login = "/interaction/{interaction_id}/login"  # the route's template, never the raw path
    assert moved(requests, endpoint=login, status="400", error="access_denied") == 1
    assert moved(requests, endpoint="unmatched", status="404", error="") == 1
    assert moved("corridor_http_request_duration_seconds_count", endpoint="/token") == 1
    issued = "corridor_tokens_issued_total"
    assert moved(issued, grant_type="authorization_code", sender_constraint="dpop") == 1
    assert moved("corridor_refusals_total", event="par", rule=str(Rule.FAPI2_5_3_2_2_5)) == 1
    sign_ins = "corridor_sign_in_attempts_total"
    assert moved(sign_ins, factor="password", result="failure") == 1
    assert moved(sign_ins, factor="password", result="success") == 1
    assert moved("corridor_audit_records_written_total") >= 7  # PAR x2, login, consent x2, code, token
    assert value(after, "corridor_audit_checkpoint_age_seconds") >= 0
    # Bounded labels: no client, user, raw path or token in any label.
    text = httpx.get(driver.as_.metrics_url).text
    for secret in (client.client_id, flow.code, tokens["access_token"], "/no/such/"):
        assert secret not in text


def test_metrics_of_two_servers_in_one_process_are_apart(driver: Driver, tmp_path: Path, tls: DevTLS) -> None:
    """A registry per AuthorizationServer: a second server starts at zero."""
    with running_as(tmp_path, tls, metrics=True) as other:
        samples = scrape(other)
        assert (
            value(
                samples,
                "corridor_tokens_issued_total",
                grant_type="authorization_code",
                sender_constraint="dpop",
            )
            == 0
        )
        assert driver.as_.server is not None and other.server is not None
        assert driver.as_.server.metrics.registry is not other.server.metrics.registry
