"""Issue 15, 2, design.md 4: one write transaction per request that writes. Transactions are
counted with SQLAlchemy's events on the AS's own engine (a write transaction: one in which an
INSERT, UPDATE or DELETE ran) around real HTTPS requests to an in-process AS, on SQLite and
PostgreSQL."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import Engine, event, func, select

from corridor.store import schema
from tests.support import PASSWORD, Driver

#: No signed checkpoint (a background write) in the middle of a counted request.
AS_SETTINGS = {"audit_checkpoint_interval": 3600.0}

WRITES = ("INSERT", "UPDATE", "DELETE")


@dataclass
class Transactions:
    """The transactions the engine ran while counting: each a list of the statements in it."""

    finished: list[list[str]] = field(default_factory=list)
    open: dict[int, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def writes(self) -> list[list[str]]:
        return [t for t in self.finished if any(s.lstrip().upper().startswith(WRITES) for s in t)]


@contextmanager
def counting(engine: Engine) -> Iterator[Transactions]:
    """Count every transaction begun and ended on ``engine`` (begin, commit, rollback events)."""
    seen = Transactions()

    def begin(conn: Any) -> None:
        with seen.lock:
            seen.open[id(conn)] = []

    def statement(conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        with seen.lock:
            if id(conn) in seen.open:
                seen.open[id(conn)].append(sql)

    def end(conn: Any) -> None:
        with seen.lock:
            statements = seen.open.pop(id(conn), None)
            if statements is not None:
                seen.finished.append(statements)

    hooks: list[tuple[str, Callable[..., None]]] = [
        ("begin", begin),
        ("before_cursor_execute", statement),
        ("commit", end),
        ("rollback", end),
    ]
    for name, hook in hooks:
        event.listen(engine, name, hook)
    try:
        yield seen
    finally:
        for name, hook in hooks:
            event.remove(engine, name, hook)


@pytest.fixture(autouse=True)
def quiet(driver: Driver) -> None:
    """Wait out the AS's start-up jobs (the first purge writes): count only requests."""
    for _ in range(50):
        with counting(driver.as_.store.engine) as seen:
            time.sleep(0.2)
        if not seen.writes:
            return
    raise AssertionError("the AS never stopped writing on its own")


def test_a_pushed_authorization_request_runs_one_write_transaction(driver: Driver) -> None:
    """Design.md 4: the proof's and the assertion's jti, the pushed request and its evidence
    record commit together: at most one write transaction for the request."""
    client = driver.add_client()
    with counting(driver.as_.store.engine) as seen:
        response, _ = driver.par(client)
    assert response.status_code == 201, response.text
    assert len(seen.writes) == 1, seen.writes


def test_a_refused_pushed_request_runs_one_write_transaction(driver: Driver) -> None:
    """A refusal after the proof and the assertion passed: their jti and the refusal's record,
    in one write transaction."""
    client = driver.add_client()
    with counting(driver.as_.store.engine) as seen:
        response, _ = driver.par(client, drop=("code_challenge",))
    assert response.status_code == 400, response.text
    assert len(seen.writes) == 1, seen.writes


@pytest.mark.parametrize("grant_type", ["authorization_code", "refresh_token"])
def test_a_token_request_runs_one_write_transaction(driver: Driver, grant_type: str) -> None:
    """Design.md 4, 5b: the code consumed, the grant locked, the token minted, the jti of the
    proof and the assertion, and the evidence record: one write transaction."""
    client = driver.add_client()
    response, flow = driver.par(client)
    assert response.status_code == 201, response.text
    assert driver.authorize(client, flow).status_code == 303
    if grant_type == "authorization_code":
        with counting(driver.as_.store.engine) as seen:
            answer = driver.redeem(client, flow)
    else:
        refresh_token = driver.redeem(client, flow).json()["refresh_token"]
        with counting(driver.as_.store.engine) as seen:
            answer = driver.token_request(
                client, {"grant_type": "refresh_token", "refresh_token": refresh_token}
            )
    assert answer.status_code == 200, answer.text
    assert len(seen.writes) == 1, seen.writes


def test_a_reused_code_is_refused_and_revokes_in_the_unit_it_was_caught_in(driver: Driver) -> None:
    """RFC 6749 4.1.2: the second redemption revokes the grant (one unit: revoke and its record)
    and is refused (the refusal's record); nothing waits, nothing nests."""
    client = driver.add_client()
    response, flow = driver.par(client)
    assert response.status_code == 201 and driver.authorize(client, flow).status_code == 303
    assert driver.redeem(client, flow).status_code == 200
    with counting(driver.as_.store.engine) as seen:
        again = driver.redeem(client, flow)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
    assert len(seen.writes) == 2, seen.writes


def _consent_page(driver: Driver) -> tuple[Any, Any, dict[str, str], str]:
    client = driver.add_client()
    response, flow = driver.par(client)
    assert response.status_code == 201, response.text
    browser = driver.browser()
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    page = browser.submit(page, {"username": driver.add_user(), "password": PASSWORD})
    assert page.status_code == 200 and 'name="decision"' in page.text, page.text
    action, csrf = browser.form_of(page)
    return client, browser, {"csrf": csrf, "decision": "approve"}, browser.base + action


def test_approve_posted_twice_at_once_never_waits_on_a_lock(
    driver: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15, 2 (issue 13 B7): two threads post "Approve" for one interaction at once. One
    gets the code, the other the refusal page; neither meets "database is locked" or a
    NestedWrite, and neither is left waiting (both answer well within SQLite's busy timeout)."""
    client, browser, form, url = _consent_page(driver)
    cookies = dict(browser.http.cookies)
    barrier = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def approve() -> None:
        with driver.as_.http(cookies=cookies) as http:
            http.get(driver.url("/jwks"))  # connected before the barrier
            barrier.wait()
            answers.append(http.post(url, data=form))

    caplog.set_level(logging.WARNING)
    with counting(driver.as_.store.engine) as seen:
        posts = [threading.Thread(target=approve) for _ in range(2)]
        for post in posts:
            post.start()
        for post in posts:
            post.join(8)
    assert not any(post.is_alive() for post in posts), "a consent POST waited"
    won, lost = sorted(answers, key=lambda r: r.status_code)
    assert (won.status_code, lost.status_code) == (303, 400), [a.text for a in answers]
    assert parse_qs(urlsplit(won.headers["location"]).query)["code"]
    assert "already completed" in lost.text
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [p for p in problems if "locked" in p or "NestedWrite" in p or "unexpected" in p], problems
    # The winner: the consume, the grant, the code and their records in one unit. The loser: the
    # consume it lost, then its refusal's record (server/authorize.py writes that one after the
    # unit, never inside it): at most two, never nested.
    granting = [w for w in seen.writes if any(s.startswith("INSERT INTO grants") for s in w)]
    assert len(granting) == 1, seen.writes
    assert any(s.startswith("UPDATE pushed_requests") for s in granting[0])
    assert any(s.startswith("INSERT INTO authorization_codes") for s in granting[0])
    assert sum(s.startswith("INSERT INTO audit_records") for s in granting[0]) == 2
    assert len(seen.writes) <= 3, seen.writes
    with driver.as_.store.engine.connect() as conn:
        count = select(func.count()).where(schema.grants.c.client_id == client.client_id)
        assert conn.execute(count).scalar_one() == 1
    browser.http.close()
