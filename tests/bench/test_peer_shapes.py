"""The benchmark's peer (bench/peer: oidc-provider) for issue 19: in issue 6's configuration it
still issues no refresh token and has no introspection (shape 1's figures stay comparable); with
CORRIDOR_PEER_REFRESH it runs the second flow shape, and with CORRIDOR_PEER_INTROSPECTION too the
phased run. Behaviour only, never timings."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
from bench.driver import phased, run
from bench.run import USERINFO_SHAPE, bench

#: What the phased run measures on oidc-provider, in order: its consent POST resumes the
#: authorization at GET /auth/{id}, which issues the code.
PEER_STEPS = [
    "sign-in POST",
    "PAR",
    "authorize",
    "GET /interaction/{id}",
    "consent POST",
    "GET /auth/{id}",
    "token (code)",
    "userinfo",
    "token (refresh)",
    "introspection",
]


def test_issue_6_peer_issues_no_refresh_token_and_has_no_introspection(tmp_path: Path) -> None:
    with bench(tmp_path) as b:
        peer = b.peer()
        context = ssl.create_default_context(cafile=str(b.tls.ca_file))
        metadata = httpx.get(peer.issuer + "/.well-known/openid-configuration", verify=context).json()
        report = asyncio.run(run(b.userinfo_target(peer), concurrency=1, flows=2, warmup=0)).report()
    assert "introspection_endpoint" not in metadata
    assert report["failures"] == {"token: no refresh token": 2}


def test_peer_with_refresh_runs_the_second_shape(tmp_path: Path) -> None:
    with bench(tmp_path) as b:
        peer = b.peer(refresh=True)
        report = b.measure(peer, concurrency=2, flows=4, warmup=2, shape=USERINFO_SHAPE)
    assert report["failures"] == {}
    assert report["flows"] == 4
    for step in ("par", "authorize", "consent", "token", "resource", "refresh"):
        assert report["latency_ms"][step]["p50"] > 0
    assert report["server_cpu_ms_per_flow"] > 0


def test_phased_run_against_the_peer(tmp_path: Path) -> None:
    with bench(tmp_path) as b:
        peer = b.peer(refresh=True, introspection=True)
        target = b.userinfo_target(peer)
        report = asyncio.run(
            phased(target, concurrency=2, flows=4, server_pid=peer.pids, sign_ins=1)
        ).report()
    assert report["failures"] == {}
    assert [p["name"] for p in report["phases"]] == PEER_STEPS
    for phase in report["phases"][1:]:
        assert phase["calls"] == 4, phase["name"]
    assert report["phases"][-1]["paths"] == {"/token/introspection": 4}
