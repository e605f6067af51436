"""Key rotation across instances (issue 7): ``corridor keys rotate`` adds a key that every instance
publishes at once and signs with only after the activation delay; the old key stays published
until every token it signed has expired. Three in-process instances on one PostgreSQL database
share one movable clock, so the delay and the retirement are crossed without sleeping."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from corridor.core.clock import MovableClock
from corridor.server.keys import key_states
from corridor.transport.tls import DevTLS
from tests.support import Driver, RunningAS, decode_jwt, postgres_database, running_as

ISSUER = "https://as.cluster.test"
CORRIDOR = [str(Path(sys.executable).parent / "corridor")]


@pytest.fixture
def instances(tmp_path: Path, tls: DevTLS, postgres_admin: str) -> Iterator[tuple[str, list[RunningAS]]]:
    clock = MovableClock()
    with postgres_database(postgres_admin) as url, ExitStack() as stack:
        running = [
            stack.enter_context(
                running_as(
                    tmp_path / f"as{i}",
                    tls,
                    issuer=ISSUER,
                    clock=clock,
                    database_url=url,
                    key_refresh_interval=0.2,
                )
            )
            for i in range(3)
        ]
        yield url, running


def signing_kid(driver: Driver) -> str:
    client = driver.add_client()
    _, tokens = driver.full_flow(client)
    return str(decode_jwt(tokens["access_token"])[0]["kid"])


def published(driver: Driver) -> set[str]:
    return {key["kid"] for key in driver.http.get(driver.url("/jwks")).json()["keys"]}


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll for the background reload (every 0.2 s), never sleeping through a lifetime."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_rotation_publishes_at_once_signs_after_the_delay_and_retires_after_the_tokens(
    instances: tuple[str, list[RunningAS]],
) -> None:
    url, running = instances
    drivers = [Driver(r) for r in running]
    old = signing_kid(drivers[0])
    assert all(published(d) == {old} for d in drivers)

    out = subprocess.run(
        [*CORRIDOR, "keys", "rotate", "--database", url, "--activate-in", "600"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    new = out.split()[1]
    assert new != old and "published now" in out
    # Published by every instance at once; nobody signs with it yet.
    assert all(published(d) == {old, new} for d in drivers)
    assert {signing_kid(d) for d in drivers} == {old}
    listed = json.loads(
        subprocess.run(
            [*CORRIDOR, "keys", "list", "--database", url, "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert {k["kid"]: k["state"] for k in listed} == {old: "active", new: "pending"}

    running[0].clock.advance(601)  # past the activation delay (one clock for all three)
    until(lambda: all(signing_kid(d) == new for d in drivers))
    assert all(published(d) == {old, new} for d in drivers)  # old tokens still verify

    assert running[0].server is not None
    settings = running[0].server.settings
    running[0].clock.advance(settings.access_token_lifetime + settings.max_clock_skew + 1)
    assert all(published(d) == {new} for d in drivers)  # every token of the old key has expired


def test_key_states() -> None:
    rows = [
        {"kid": "a", "alg": "ES256", "created_at": 0.0, "activates_at": 0.0},
        {"kid": "b", "alg": "ES256", "created_at": 100.0, "activates_at": 700.0},
    ]

    def states(now: float) -> dict[str, str]:
        return {s.kid: s.state for s in key_states(rows, now, keep=310)}

    assert states(100) == {"a": "active", "b": "pending"}
    assert states(699) == {"a": "active", "b": "pending"}
    assert states(700) == {"a": "retiring", "b": "active"}
    assert states(1009) == {"a": "retiring", "b": "active"}
    assert states(1010) == {"a": "retired", "b": "active"}
    retiring = next(s for s in key_states(rows, 800, keep=310) if s.kid == "a")
    assert (retiring.superseded_at, retiring.retires_at) == (700.0, 1010.0)
