"""A smoke run of the benchmark against its peer (bench/peer: oidc-provider as a FAPI 2.0 AS), so
``make bench`` cannot silently rot on the peer's side either. Behaviour only, never timings."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.driver import Target, run
from bench.run import CLIENT_ID, PASSWORD, REDIRECT_URI, USERNAME, bench


def test_driver_runs_complete_flows_against_the_peer(tmp_path: Path) -> None:
    with bench(tmp_path) as b:
        peer = b.peer()
        target = Target(
            peer.issuer, CLIENT_ID, b.client_key, REDIRECT_URI, USERNAME, PASSWORD, str(b.tls.ca_file)
        )
        report = asyncio.run(run(target, concurrency=2, flows=4, warmup=2, server_pid=peer.pids)).report()
    assert report["failures"] == {}
    assert report["flows"] == 4
    for step in ("par", "authorize", "consent", "token", "resource"):
        assert report["latency_ms"][step]["p50"] > 0
    assert "login" not in report["latency_ms"]  # signed in during the warm-up, the session kept
    assert report["server_cpu_ms_per_flow"] > 0
