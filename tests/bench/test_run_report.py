"""``make bench``'s report (bench/run.py, issue 19): the generated block has both flow shapes and
the per-endpoint table, and the audit chain is verified after the Corridor runs, a broken chain
failing the run. The report is checked on made-up figures, so a slip in it shows here rather
than at the end of a 15-minute run."""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.driver import Phase, Phased, Results
from bench.run import (
    ENDPOINTS,
    OURS,
    PEER,
    PEER_ENDPOINTS,
    PEER_REFRESH,
    RS_SHAPE,
    USERINFO_SHAPE,
    Runs,
    audit_verify,
    render,
)
from sqlalchemy import select, update

from corridor.store import schema as t
from corridor.transport.tls import DevTLS
from tests.support import Driver, running_as


def flows(cpu_ms_per_flow: float, *, refresh: bool) -> dict[str, Any]:
    results = Results(flows=10, seconds=0.1, server_cpu_ms=10 * cpu_ms_per_flow)
    for step in ("par", "authorize", "interaction", "consent", "token", "resource"):
        results.latencies[step] = [0.002, 0.004]
    if refresh:
        results.latencies["refresh"] = [0.003]
    return results.report()


def endpoints(cpu: dict[str, float]) -> dict[str, Any]:
    out = Phased()
    for name, ms in cpu.items():
        out.phases.append(Phase(name, 8, 8, Counter({name: 8}), latencies=[0.001], server_cpu_ms=8 * ms))
    return out.report()


STEPS = {"PAR": 2.0, "authorize": 1.0, "GET /interaction/{id}": 1.0, "consent POST": 1.0}
TAIL = {"token (code)": 2.0, "userinfo": 1.0, "token (refresh)": 2.0, "introspection": 1.0}


def test_render_has_both_shapes_the_endpoints_and_the_audit() -> None:
    runs: Runs = defaultdict(list)
    for _ in range(2):
        runs[RS_SHAPE, PEER].append(flows(5.0, refresh=False))
        runs[RS_SHAPE, OURS].append(flows(10.0, refresh=False))
        runs[RS_SHAPE, PEER_REFRESH].append(flows(4.0, refresh=False))
        runs[USERINFO_SHAPE, PEER_REFRESH].append(flows(6.0, refresh=True))
        runs[USERINFO_SHAPE, OURS].append(flows(9.0, refresh=True))
        runs[ENDPOINTS, PEER_ENDPOINTS].append(
            endpoints({"sign-in POST": 0.5, **STEPS, "GET /auth/{id}": 1.0, **TAIL})
        )
        runs[ENDPOINTS, OURS].append(
            endpoints({"sign-in POST": 100.0, **{k: 2 * v for k, v in STEPS.items()}, **TAIL})
        )
    args = argparse.Namespace(rounds=2, flows=300, concurrency=8, warmup=40)
    block = render(args, runs, ["as:host:1:ab: 12 records, intact"], [], 600.0)
    assert "### Shape 1" in block and "### Shape 2" in block
    # Shape 1 against issue 6's peer: 10 / 5 ms; against the peer with refresh tokens: 10 / 4.
    assert (
        "| AS CPU ms per flow (lower is better) | 5.00 (5.00-5.00) | 10.00 (10.00-10.00) | **2.00**" in block
    )
    assert (
        "| AS CPU ms per flow (lower is better) | 4.00 (4.00-4.00) | 10.00 (10.00-10.00) | **2.50**" in block
    )
    # Shape 2: 9 / 6 ms, and the refresh p99 row.
    assert "| AS CPU ms per flow (lower is better) | 6.00 (6.00-6.00) | 9.00 (9.00-9.00) | **1.50**" in block
    assert "| refresh (token endpoint) p99 ms" in block
    assert "| PAR (POST, private_key_jwt + DPoP) | 2.00 (2.00-2.00) | 4.00 (4.00-4.00) | **2.00**" in block
    assert "oidc-provider's resumption after consent: issues the code) | 1.00 (1.00-1.00) | - | - |" in block
    assert "| - (not the same work) |" in block  # the sign-in: Argon2id against no password check
    # One flow of shape 2: 2+1+1+1 + 1 (resumption) + 2+1+2 on the peer, 4+2+2+2 + 2+1+2 on Corridor.
    assert (
        "| one flow of the second shape (sum of its steps) | 11.00 (11.00-11.00) | 15.00 (15.00-15.00) |"
        in block
    )
    assert "    as:host:1:ab: 12 records, intact" in block
    assert "Failed flows: oidc-provider: 0, oidc-provider +refresh: 0, corridor: 0." in block


@pytest.fixture
def driver(tmp_path: Path, tls: DevTLS) -> Iterator[Driver]:
    """An AS of this test's own on SQLite (the bench's store): the test tampers with its trail."""
    with running_as(tmp_path, tls, database_url=f"sqlite:///{tmp_path / 'corridor.db'}") as running:
        d = Driver(running)
        yield d
        d.http.close()


def test_audit_verify_passes_then_fails_the_run_on_a_broken_chain(driver: Driver) -> None:
    driver.full_flow(driver.add_client())
    url = driver.as_.store.url
    lines = audit_verify(driver.as_.data_dir, url)
    assert lines and all(line.endswith("intact") for line in lines), lines
    with driver.as_.store.engine.begin() as conn:
        victim = conn.execute(select(t.audit_records.c.id).order_by(t.audit_records.c.id)).first()
        assert victim is not None
        conn.execute(
            update(t.audit_records).where(t.audit_records.c.id == victim.id).values(outcome="allowed")
        )
    with pytest.raises(SystemExit, match="corridor audit verify failed"):
        audit_verify(driver.as_.data_dir, url)
