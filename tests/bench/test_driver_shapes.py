"""Issue 19's additions to the load driver, against an in-process AS: the second flow shape
(UserInfo, then a refresh_token grant) and the phased run that measures each endpoint. Behaviour
only, never timings."""

from __future__ import annotations

import asyncio
import os

from bench.driver import phased, run

from tests.bench.targets import new_target
from tests.support import Driver

#: What the phased run measures on Corridor, in order (its consent POST issues the code, so no
#: redirect follows it).
CORRIDOR_STEPS = [
    "sign-in POST",
    "PAR",
    "authorize",
    "GET /interaction/{id}",
    "consent POST",
    "token (code)",
    "userinfo",
    "token (refresh)",
    "introspection",
]


def test_driver_runs_the_userinfo_and_refresh_shape(driver: Driver) -> None:
    target = new_target(driver)
    target.refresh = True  # no resource_url: the resource call is UserInfo
    report = asyncio.run(run(target, concurrency=2, flows=4, warmup=2, server_pid=os.getpid())).report()
    assert report["failures"] == {}
    assert report["flows"] == 4
    for step in ("par", "authorize", "consent", "token", "resource", "refresh"):
        assert report["latency_ms"][step]["p50"] > 0


def test_phased_run_measures_every_endpoint(driver: Driver) -> None:
    target = new_target(driver)
    target.refresh = True
    result = asyncio.run(phased(target, concurrency=2, flows=4, server_pid=os.getpid(), sign_ins=1))
    report = result.report()
    assert report["failures"] == {}
    assert [p["name"] for p in report["phases"]] == CORRIDOR_STEPS
    phases = {p["name"]: p for p in report["phases"]}
    assert phases["sign-in POST"]["calls"] == 2  # one per user
    assert phases["sign-in POST"]["paths"] == {"/interaction/{id}/login": phases["sign-in POST"]["requests"]}
    for name in CORRIDOR_STEPS[1:]:
        assert phases[name]["calls"] == 4, name  # 2 rounds of 2 users
        assert phases[name]["server_cpu_ms_per_call"] is not None
    assert phases["token (refresh)"]["paths"] == {"/token": 4}
    assert phases["introspection"]["paths"] == {"/introspect": 4}


def test_phased_run_without_introspection(driver: Driver) -> None:
    target = new_target(driver)
    target.refresh = True
    report = asyncio.run(phased(target, concurrency=1, flows=1, sign_ins=1, introspection=False)).report()
    assert report["failures"] == {}
    assert [p["name"] for p in report["phases"]] == CORRIDOR_STEPS[:-1]
    assert all(p["server_cpu_ms_per_call"] is None for p in report["phases"])  # no server_pid
