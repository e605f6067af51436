"""The load driver signs in as a person would when the AS is busy: with one password-hashing
slot, six virtual users signing in at once meet 503 with Retry-After (issue 13 B3), wait and
send the form again, so no flow fails for it (before, each such user failed every later flow
and re-hashed a password each time, which showed as failed flows and extra CPU in make bench)."""

from __future__ import annotations

import asyncio
import os

import pytest
from bench.driver import run

from tests.bench.targets import new_target
from tests.support import Driver

#: One hashing slot: concurrent sign-ins beyond it are answered 503 at once, never queued.
AS_SETTINGS = {"password_hash_concurrency": 1}
#: Sign-ins meet the bound only while real 64 MiB hashes run (tests/conftest.py FAST_HASHER otherwise).
pytestmark = pytest.mark.production_argon2


def test_busy_sign_ins_are_retried_not_failed(driver: Driver) -> None:
    target = new_target(driver)
    # No warm-up: the six first sign-ins are part of the counted flows.
    results = asyncio.run(run(target, concurrency=6, flows=6, warmup=0, server_pid=os.getpid()))
    report = results.report()
    assert report["failures"] == {}
    assert report["flows"] == 6
    assert "login" in report["latency_ms"]  # every user signed in during these flows
