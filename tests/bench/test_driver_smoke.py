"""A smoke run of the load driver (a handful of flows against an in-process AS), so the
benchmark cannot silently rot. It asserts behaviour, never timings."""

from __future__ import annotations

import asyncio
import os

from bench.driver import run

from tests.bench.targets import new_target
from tests.support import Driver


def test_driver_runs_complete_flows(driver: Driver) -> None:
    target = new_target(driver)
    results = asyncio.run(run(target, concurrency=2, flows=6, warmup=2, server_pid=os.getpid()))
    report = results.report()
    assert report["failures"] == {}
    assert report["flows"] == 6
    for step in ("par", "authorize", "consent", "token", "resource"):
        assert report["latency_ms"][step]["p50"] > 0
    assert "login" not in report["latency_ms"]  # users signed in during the warm-up and kept their sessions
    assert report["server_cpu_ms_per_flow"] is not None and report["server_cpu_ms_per_flow"] > 0
