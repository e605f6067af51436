"""``make bench``: Corridor against panva's oidc-provider (bench/peer), interleaved, and Corridor's
scaling figures; the results replace the generated part of bench/RESULTS.md.

* Both servers run the same complete flow (bench/driver.py) with the same client key, the same
  resource indicator and the same resource server (bench/resource.py), one after the other:
  peer, Corridor, peer, Corridor, ... (``--rounds``), each run after its own warm-up. Absolute
  figures on a shared machine drift by 20-30 % over minutes; the ratios of neighbouring runs are
  what we report.
* Two flow shapes (issue 19): shape 1 ends with the resource server call (issue 6's flow,
  against the peer as configured in issue 6, and again against the peer issuing refresh tokens
  as Corridor does); shape 2 ends with UserInfo on the AS and a refresh_token grant, against
  the peer issuing refresh tokens (``CORRIDOR_PEER_REFRESH=1``: a second peer process).
* CPU per endpoint (issue 19; ``--no-phases`` skips it): the driver's phased run (every virtual
  user takes step k, then step k+1, ...; /proc read around each step) on shape 2 plus
  introspection, against a third peer process that also has introspection on.
* After the Corridor runs, ``corridor audit verify`` on its data directory (and again after the
  scaling runs, on SQLite and PostgreSQL); a broken chain fails the run.
* Pinning (``taskset``): the authorization servers on CPU 0, the driver and the resource server
  on CPU 1, so the AS under test has a core to itself and its CPU per flow is its own.
* Corridor runs as ``corridor serve`` on its embedded default (SQLite in WAL mode, a durable
  store), oidc-provider on its default in-memory adapter.
* Scaling: Corridor with 1 and 2 worker processes (``--workers``) on the same SQLite file, and
  CPU per flow with 1k, 100k and 1M stored grants and access tokens (rows inserted before the
  server starts; all unexpired, so nothing is purged away).

    .venv/bin/python -m bench.run [--rounds 3] [--flows 300] [--concurrency 8] [--no-phases] [--no-scaling]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.driver import SIGN_IN_ROUNDS, Target, phased, run
from corridor.core.jose import SigningKey
from corridor.core.randomness import new_id, token_hash
from corridor.transport.tls import DevTLS, ensure_dev_tls

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"
CLIENT_ID = "bench-client"
REDIRECT_URI = "https://client.example.org/cb"
USERNAME, PASSWORD = "bench-user", "bench-password-not-secret"
SCOPE = "openid accounts"
SERVER_CPU, DRIVER_CPU = "0", "1"
#: The two flow shapes (issue 19): ending in the resource server call (issue 6's flow), and
#: ending in UserInfo on the AS followed by a refresh.
RS_SHAPE, USERINFO_SHAPE = "rs", "userinfo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cpu: str, command: list[str]) -> list[str]:
    """``taskset -c CPU command`` when the machine has two CPUs or more (taskset execs, so the
    process id stays the command's)."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", cpu, *command]
    return command


def wait_ready(url: str, ca_file: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, verify=context, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url}: not ready after {timeout} s")


def children(pid: int) -> tuple[int, ...]:
    """Processes whose parent is ``pid`` (the workers of ``corridor serve --workers N``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return tuple(found)


@dataclass
class Server:
    name: str
    issuer: str
    process: subprocess.Popen[bytes]
    pids: tuple[int, ...]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Bench:
    work: Path
    tls: DevTLS
    client_key: SigningKey
    resource: str
    log: Path
    servers: list[Server] = field(default_factory=list)
    #: Corridor keeps its issuer (and so the resource server's trust) across restarts.
    corridor_port: int = field(default_factory=free_port)
    corridor_mtls_port: int = field(default_factory=free_port)

    def spawn(
        self, command: list[str], *, env: dict[str, str] | None = None, stdin: bool = False
    ) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdin else log,
                stderr=log,
            )

    def corridor(
        self, data_dir: Path, *, workers: int = 1, register: bool = True, database_url: str | None = None
    ) -> Server:
        """``corridor serve`` on ``data_dir`` (its SQLite file, or ``database_url``)."""
        corridor = [str(Path(sys.executable).parent / "corridor")]
        env = {"CORRIDOR_DATABASE_URL": database_url} if database_url else {}
        if register:
            jwks = self.work / "client-jwks.json"
            jwks.write_text(json.dumps({"keys": [self.client_key.public_jwk]}))
            common = ["--data-dir", str(data_dir)]
            run_cli = [*corridor]
            # The CLI's registration commands need an existing database (issue 13).
            data_dir.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [*run_cli, "db", "upgrade", *common],
                check=True,
                capture_output=True,
                env={**os.environ, **env},
            )
            subprocess.run(
                [
                    *run_cli,
                    "resource",
                    "add",
                    self.resource,
                    "--name",
                    "Bench API",
                    "--scope",
                    "accounts",
                    *common,
                ],
                check=True,
                capture_output=True,
                env={**os.environ, **env},
            )
            subprocess.run(
                [
                    *run_cli,
                    "client",
                    "add",
                    "--name",
                    "Bench client",
                    "--redirect-uri",
                    REDIRECT_URI,
                    "--jwks-file",
                    str(jwks),
                    "--scope",
                    SCOPE,
                    "--client-id",
                    CLIENT_ID,
                    *common,
                ],
                check=True,
                capture_output=True,
                env={**os.environ, **env},
            )
            subprocess.run(
                [*run_cli, "user", "add", USERNAME, "--password-stdin", *common],
                input=PASSWORD.encode(),
                check=True,
                capture_output=True,
                env={**os.environ, **env},
            )
        port = self.corridor_port
        issuer = f"https://localhost:{port}"
        process = self.spawn(
            pinned(
                SERVER_CPU,
                [
                    *corridor,
                    "serve",
                    "--data-dir",
                    str(data_dir),
                    "--port",
                    str(port),
                    "--mtls-port",
                    str(self.corridor_mtls_port),
                    "--workers",
                    str(workers),
                ],
            ),
            env={"CORRIDOR_LOG_LEVEL": "warning", **env},
        )
        wait_ready(issuer + "/jwks", self.tls.ca_file, process)
        pids = (process.pid,) if workers == 1 else children(process.pid)
        server = Server(f"corridor x{workers}" if workers > 1 else "corridor", issuer, process, pids)
        self.servers.append(server)
        return server

    def peer(self, *, refresh: bool = False, introspection: bool = False) -> Server:
        """oidc-provider (bench/peer/server.mjs); with neither option exactly as in issue 6.
        ``refresh``: a refresh token with every code, as Corridor gives one (the second flow
        shape); ``introspection``: its introspection endpoint on (the per-endpoint figures)."""
        env = {
            "CORRIDOR_PEER_REFRESH": "1" if refresh else "",
            "CORRIDOR_PEER_INTROSPECTION": "1" if introspection else "",
            "CORRIDOR_PEER_PORT": "0",
            "CORRIDOR_PEER_CERT": str(self.tls.cert_file),
            "CORRIDOR_PEER_KEY": str(self.tls.key_file),
            "CORRIDOR_PEER_RESOURCE": self.resource,
            "CORRIDOR_PEER_SCOPE": "accounts",
            "CORRIDOR_CLIENT_ID": CLIENT_ID,
            "CORRIDOR_CLIENT_JWK": json.dumps(self.client_key.public_jwk),
            "CORRIDOR_REDIRECT_URI": REDIRECT_URI,
        }
        process = self.spawn(
            pinned(SERVER_CPU, ["node", str(HERE / "peer" / "server.mjs")]), env=env, stdin=True
        )
        assert process.stdout is not None
        line = json.loads(process.stdout.readline() or b"{}")
        if not line.get("ready"):
            raise RuntimeError(f"oidc-provider did not start: {line}")
        name = "oidc-provider" + "".join(
            f" +{option}" for option, on in (("refresh", refresh), ("introspection", introspection)) if on
        )
        server = Server(name, line["issuer"], process, (process.pid,))
        self.servers.append(server)
        return server

    def resource_server(self, issuers: list[str]) -> subprocess.Popen[bytes]:
        port = int(self.resource.rsplit(":", 1)[1])
        command = [
            sys.executable,
            "-m",
            "bench.resource",
            "--port",
            str(port),
            "--cert",
            str(self.tls.cert_file),
            "--key",
            str(self.tls.key_file),
            "--ca",
            str(self.tls.ca_file),
        ]
        for issuer in issuers:
            command += ["--issuer", issuer]
        process = self.spawn(pinned(DRIVER_CPU, command))
        wait_ready(self.resource + "/.well-known/oauth-protected-resource", self.tls.ca_file, process)
        return process

    def target(self, server: Server) -> Target:
        return Target(
            server.issuer,
            CLIENT_ID,
            self.client_key,
            REDIRECT_URI,
            USERNAME,
            PASSWORD,
            str(self.tls.ca_file),
            SCOPE,
            self.resource,
            self.resource + "/accounts",
        )

    def userinfo_target(self, server: Server) -> Target:
        """Issue 19's second flow shape: no resource indicator (the access token is for the AS),
        UserInfo as the resource call, then a refresh_token grant."""
        target = self.target(server)
        target.scope, target.resource, target.resource_url, target.refresh = "openid", None, None, True
        return target

    def measure(
        self, server: Server, *, concurrency: int, flows: int, warmup: int, shape: str = RS_SHAPE
    ) -> dict[str, Any]:
        target = self.target(server) if shape == RS_SHAPE else self.userinfo_target(server)
        results = asyncio.run(
            run(target, concurrency=concurrency, flows=flows, warmup=warmup, server_pid=server.pids)
        )
        report = results.report()
        refresh = report["latency_ms"].get("refresh")
        print(
            f"  {shape:<9} {server.name:<28} {report['flows_per_second']:>7.1f} flows/s  "
            f"{report['server_cpu_ms_per_flow']:>6.2f} CPU ms/flow  "
            f"token p99 {report['latency_ms'].get('token', {}).get('p99', 0):>6.1f} ms  "
            + (f"refresh p99 {refresh['p99']:>6.1f} ms  " if refresh else "")
            + f"failures {sum(report['failures'].values())}  busy sign-ins retried {report['busy_logins']}",
            flush=True,
        )
        for reason, count in sorted(report["failures"].items(), key=lambda item: -item[1]):
            print(f"    {count:>5}  {reason}", flush=True)
        return report

    def endpoints(self, server: Server, *, concurrency: int, flows: int) -> dict[str, Any]:
        """The phased run (bench.driver.phased) on the second shape, with introspection."""
        report = asyncio.run(
            phased(self.userinfo_target(server), concurrency=concurrency, flows=flows, server_pid=server.pids)
        ).report()
        cells = [f"{p['name']} {p['server_cpu_ms_per_call']}" for p in report["phases"]]
        print(f"  endpoints {server.name:<28} CPU ms per call: {', '.join(cells)}", flush=True)
        print(
            f"    failures {sum(report['failures'].values())}  busy sign-ins retried {report['busy_logins']}",
            flush=True,
        )
        for reason, count in sorted(report["failures"].items(), key=lambda item: -item[1]):
            print(f"    {count:>5}  {reason}", flush=True)
        return report


def audit_verify(data_dir: Path, database_url: str | None = None) -> list[str]:
    """``corridor audit verify`` on a Corridor data directory (issue 19: the audit chain
    verifies after a bench run); its output lines. A broken chain ends the run (exit 1)."""
    corridor = str(Path(sys.executable).parent / "corridor")
    database = ["--database", database_url] if database_url else []
    done = subprocess.run(
        [corridor, "audit", "verify", "--data-dir", str(data_dir), *database],
        capture_output=True,
        text=True,
    )
    lines = done.stdout.splitlines()
    print("  corridor audit verify: " + ("; ".join(lines) or "(no output)"), flush=True)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr, flush=True)
        raise SystemExit(f"corridor audit verify failed (exit {done.returncode}) on {data_dir}")
    return lines


def seed(database_url: str, rows: int, now: float) -> None:
    """Insert ``rows`` grants and as many access tokens (unexpired) into a Corridor database."""
    from sqlalchemy import create_engine, func, insert, select

    from corridor.store import schema as t
    from corridor.store.sql import database_url as url_of

    engine = create_engine(url_of(database_url))
    with engine.begin() as conn:
        have = conn.execute(select(func.count()).select_from(t.grants)).scalar_one()
    chunk = 20_000
    for start in range(have, rows, chunk):
        grants, tokens = [], []
        for i in range(start, min(rows, start + chunk)):
            grant_id = new_id()
            grants.append(
                {
                    "id": grant_id,
                    "client_id": CLIENT_ID,
                    "user_id": f"seed-{i % 1000}",
                    "scope": SCOPE,
                    "authorization_details": None,
                    "resources": "[]",
                    "auth_time": now,
                    "acr": "password",
                    "refresh_token_hash": token_hash(new_id()),
                    "created_at": now,
                    "expires_at": now + 86_400 * 30,
                    "revoked_at": None,
                    "revoked_reason": None,
                }
            )
            tokens.append(
                {
                    "jti": new_id(),
                    "grant_id": grant_id,
                    "client_id": CLIENT_ID,
                    "cnf_method": "dpop",
                    "cnf_thumbprint": "x" * 43,
                    "issued_at": now,
                    "expires_at": now + 86_400 * 30,
                    "revoked_at": None,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(t.grants), grants)
            conn.execute(insert(t.access_tokens), tokens)
    # Measure a settled database, not one whose planner statistics predate the bulk load.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    engine.dispose()


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def ratio_cell(peer: list[float], ours: list[float]) -> str:
    """Median (range) of the per-round ratios Corridor/peer (neighbouring runs)."""
    ratios = [b / a for a, b in zip(peer, ours, strict=True) if a]
    if not ratios:
        return "-"
    return f"**{statistics.median(ratios):.2f}** ({min(ratios):.2f}-{max(ratios):.2f})"


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, Node {node}"


def _series(reports: list[dict[str, Any]], key: str) -> list[float]:
    out = []
    for report in reports:
        if key.endswith("_p99"):  # token_p99, refresh_p99: that step's p99 latency
            out.append(report["latency_ms"][key.removesuffix("_p99")]["p99"])
        else:
            out.append(report[key])
    return out


def _comparison(runs: Runs, shape: str, peer: str, rows: tuple[tuple[str, str, str], ...]) -> list[str]:
    lines = [
        f"| | {peer} 9.13.3 (memory) | Corridor (SQLite WAL) | ratio Corridor/peer (median, range) |",
        "|---|---|---|---|",
    ]
    for label, key, better in rows:
        p, c = _series(runs[shape, peer], key), _series(runs[shape, OURS], key)
        lines.append(f"| {label} ({better}) | {spread(p)} | {spread(c)} | {ratio_cell(p, c)} |")
    return lines


def _failed(runs: Runs, *keys: tuple[str, str]) -> str:
    return ", ".join(
        f"{name}: {sum(sum(r['failures'].values()) for r in runs[shape, name])}" for shape, name in keys
    )


def _steps(runs: Runs, shape: str, peer: str) -> list[str]:
    lines = ["| step | oidc-provider | Corridor |", "|---|---|---|"]
    last_peer, last_ours = runs[shape, peer][-1]["latency_ms"], runs[shape, OURS][-1]["latency_ms"]
    for step in sorted(last_ours):
        a, b = last_peer.get(step, {}), last_ours.get(step, {})
        cells = [f"{x.get('p50', '-')} / {x.get('p99', '-')}" for x in (a, b)]
        lines.append(f"| {step} | {cells[0]} | {cells[1]} |")
    return lines


#: What each step of the phased run is, for the endpoint table.
ENDPOINT_NOTES = {
    "sign-in POST": "sign-in form POST (Corridor: Argon2id; the peer checks no password)",
    "PAR": "PAR (POST, private_key_jwt + DPoP)",
    "authorize": "GET authorize (request_uri)",
    "GET /interaction/{id}": "GET interaction page (consent page, signed in)",
    "consent POST": "consent POST (Corridor: issues the code)",
    "GET /auth/{id}": "GET /auth/{id} (oidc-provider's resumption after consent: issues the code)",
    "token (code)": "token, authorization_code (private_key_jwt + DPoP)",
    "userinfo": "UserInfo (GET, DPoP-bound token)",
    "token (refresh)": "token, refresh_token (private_key_jwt + DPoP)",
    "introspection": "introspection (private_key_jwt)",
}
#: Steps whose two figures are not the same work: no ratio.
NO_RATIO = ("sign-in POST",)
#: Steps not part of a flow of the second shape (the sum row leaves them out).
NOT_IN_A_FLOW = ("sign-in POST", "introspection")


def _endpoints(runs: Runs) -> list[str]:
    peer_runs, our_runs = runs[ENDPOINTS, PEER_ENDPOINTS], runs[ENDPOINTS, OURS]

    def per_round(reports: list[dict[str, Any]], name: str) -> list[float]:
        out = []
        for report in reports:
            cpu = next((p["server_cpu_ms_per_call"] for p in report["phases"] if p["name"] == name), None)
            out.append(float("nan") if cpu is None else cpu)
        return out

    def flow_sum(reports: list[dict[str, Any]]) -> list[float]:
        return [
            sum(p["server_cpu_ms_per_call"] or 0 for p in r["phases"] if p["name"] not in NOT_IN_A_FLOW)
            for r in reports
        ]

    names: list[str] = []
    for report in [*our_runs, *peer_runs]:
        for p in report["phases"]:
            if p["name"] not in names:
                names.append(p["name"])
    order = list(ENDPOINT_NOTES)
    names.sort(key=lambda n: order.index(n) if n in order else len(order))
    lines = [
        "| endpoint | oidc-provider CPU ms per call | Corridor CPU ms per call "
        "| ratio Corridor/peer (median, range) | calls per run (peer / Corridor) |",
        "|---|---|---|---|---|",
    ]

    def cell(values: list[float]) -> str:
        present = [v for v in values if v == v]
        return spread(present) if present else "-"

    for name in [*names, "one flow of the second shape (sum of its steps)"]:
        if name in names:
            p, c = per_round(peer_runs, name), per_round(our_runs, name)
            calls = [
                str(next((x["calls"] for x in r[-1]["phases"] if x["name"] == name), "-"))
                for r in (peer_runs, our_runs)
            ]
        else:
            p, c = flow_sum(peer_runs), flow_sum(our_runs)
            calls = ["", ""]
        both = [(a, b) for a, b in zip(p, c, strict=True) if a == a and b == b]
        ratio = ratio_cell([a for a, _ in both], [b for _, b in both]) if both else "-"
        if name in NO_RATIO:
            ratio = "- (not the same work)"
        label = ENDPOINT_NOTES.get(name, name)
        lines.append(f"| {label} | {cell(p)} | {cell(c)} | {ratio} | {' / '.join(calls).strip(' /')} |")
    return lines


def render(args: argparse.Namespace, runs: Runs, audit: list[str], scaling: list[str], seconds: float) -> str:
    lines = [
        BEGIN,
        f"## Corridor vs oidc-provider (`make bench`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {machine()}. {args.rounds} interleaved rounds (per round: shape 1 on the peer, "
        "Corridor, the peer with refresh tokens; shape 2 on the peer with refresh tokens, Corridor"
        + ("; the per-endpoint runs" if runs.get((ENDPOINTS, OURS)) else "")
        + "), each "
        f"{args.flows} flows at concurrency {args.concurrency} after {args.warmup} warm-up flows; "
        "servers on CPU 0, driver and resource server on CPU 1. Figures are median (min-max); "
        "ratios are the median (range) of each round's neighbouring runs.",
        "",
        "### Shape 1: PAR, authorize, consent, callback, token, resource server call (issue 6's flow)",
        "",
        "Against oidc-provider as configured in issue 6 (unchanged: no refresh tokens, no introspection):",
        "",
    ]
    rows = (
        ("flows/s", "flows_per_second", "higher is better"),
        ("AS CPU ms per flow", "server_cpu_ms_per_flow", "lower is better"),
        ("token endpoint p99 ms", "token_p99", "lower is better"),
    )
    lines += _comparison(runs, RS_SHAPE, PEER, rows)
    lines += [
        "",
        "The same shape against oidc-provider issuing a refresh token with every code, as Corridor "
        "does in this flow too (`CORRIDOR_PEER_REFRESH=1`, the second shape's peer):",
        "",
    ]
    lines += _comparison(runs, RS_SHAPE, PEER_REFRESH, rows)
    lines += [
        "",
        f"Failed flows: {_failed(runs, (RS_SHAPE, PEER), (RS_SHAPE, PEER_REFRESH), (RS_SHAPE, OURS))}.",
        "",
        "Per-step latency of the last round (against issue 6's peer), p50 / p99 ms:",
        "",
        *_steps(runs, RS_SHAPE, PEER),
        "",
        "### Shape 2: PAR, authorize, consent, callback, token, UserInfo (AS), refresh",
        "",
        "No resource indicator (the access token is for the AS), UserInfo with the DPoP-bound token, "
        "then a refresh_token grant at the token endpoint (private_key_jwt and a DPoP proof with the "
        "same key; neither server rotates this confidential client's refresh token). The peer is "
        "started with `CORRIDOR_PEER_REFRESH=1`: oidc-provider issues no refresh token in issue 6's "
        "configuration and, by default, only for `offline_access` (which needs `prompt=consent`); "
        "Corridor issues one with every code. The work differs in two places, both by design of "
        "the servers: oidc-provider's access token for its own UserInfo is opaque (stored, not "
        "signed; it has no JWT format for UserInfo) where Corridor's is a signed JWT (RFC 9068), "
        "and on refresh oidc-provider also signs a new ID token (openid in scope) where Corridor "
        "does not.",
        "",
    ]
    lines += _comparison(
        runs,
        USERINFO_SHAPE,
        PEER_REFRESH,
        (*rows, ("refresh (token endpoint) p99 ms", "refresh_p99", "lower is better")),
    )
    lines += [
        "",
        f"Failed flows: {_failed(runs, (USERINFO_SHAPE, PEER_REFRESH), (USERINFO_SHAPE, OURS))}.",
        "",
        "Per-step latency of the last round, p50 / p99 ms (`resource` is UserInfo here):",
        "",
        *_steps(runs, USERINFO_SHAPE, PEER_REFRESH),
    ]
    if runs.get((ENDPOINTS, OURS)):
        busy = ", ".join(str(r["busy_logins"]) for r in runs[ENDPOINTS, OURS])
        lines += [
            "",
            "### CPU per endpoint (phased run, shape 2 and introspection)",
            "",
            f"{args.concurrency} virtual users run their flows in step: every user takes step k, then "
            "every user step k+1; the AS's CPU (/proc) is read before and after each step and summed "
            f"over {max(1, round(args.flows / args.concurrency))} rounds per run; CPU per call = CPU / "
            f"calls (a call includes its DPoP nonce retries; sign-in, {SIGN_IN_ROUNDS} per user in fresh "
            f"user agents, includes its busy 503 retries: Corridor {busy} per run). The peer is a third "
            "process with `CORRIDOR_PEER_REFRESH=1 CORRIDOR_PEER_INTROSPECTION=1` "
            "(`features.introspection`, a client may introspect its own tokens), so shape 1's peer is "
            "untouched. /proc counts 10 ms ticks, so a figure below ~0.5 ms is coarse.",
            "",
            *_endpoints(runs),
            "",
            f"Failed flows: {_failed(runs, (ENDPOINTS, PEER_ENDPOINTS), (ENDPOINTS, OURS))}.",
        ]
    lines += [
        "",
        "### Audit chain after the Corridor runs",
        "",
        "`corridor audit verify --data-dir <the bench's data directory>` (exit 0; a failure fails the run):",
        "",
        *[f"    {line}" for line in audit],
    ]
    if scaling:
        lines += ["", "### Scaling (Corridor)", "", *scaling]
    lines += [
        "",
        f"Reproduce: `make bench` (or `.venv/bin/python -m bench.run --help`); this run took "
        f"{seconds / 60:.1f} minutes.",
        END,
    ]
    return "\n".join(lines)


def write_results(block: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


@contextlib.contextmanager
def bench(work: Path) -> Iterator[Bench]:
    tls = ensure_dev_tls(work / "corridor" / "tls")
    b = Bench(
        work, tls, SigningKey.generate("ES256"), f"https://127.0.0.1:{free_port()}", work / "servers.log"
    )
    try:
        yield b
    finally:
        for server in b.servers:
            server.stop()


#: The peer's configurations: issue 6's (shape 1, unchanged), with refresh tokens (shape 2, and
#: shape 1 again for comparison), and with introspection too (the per-endpoint figures only).
PEER, PEER_REFRESH, PEER_ENDPOINTS = (
    "oidc-provider",
    "oidc-provider +refresh",
    "oidc-provider +refresh +introspection",
)
OURS = "corridor"
ENDPOINTS = "endpoints"

#: Runs of one ``make bench``: (shape or ENDPOINTS, server name) -> one report per round.
Runs = dict[tuple[str, str], list[dict[str, Any]]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="0: only the scaling figures, printed")
    parser.add_argument("--flows", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-phases", action="store_true", help="skip the per-endpoint figures")
    parser.add_argument("--no-scaling", action="store_true", help="skip the workers and growth figures")
    parser.add_argument("--grow", default="1000,100000,1000000", help="stored rows for the growth figure")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch bench/RESULTS.md")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CORRIDOR_BENCH_POSTGRES_URL", ""),
        help="an administrative PostgreSQL URL: adds the growth figure on PostgreSQL",
    )
    args = parser.parse_args()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {int(DRIVER_CPU)})
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="corridor-bench-") as tmp, bench(Path(tmp)) as b:
        work = Path(tmp)
        print(f"work: {work}; server output in {b.log}", flush=True)
        peer = b.peer()
        peer_refresh = b.peer(refresh=True)
        peer_endpoints = None if args.no_phases else b.peer(refresh=True, introspection=True)
        ours = b.corridor(work / "corridor")
        rs = b.resource_server([peer.issuer, peer_refresh.issuer, ours.issuer])
        try:
            runs: Runs = defaultdict(list)
            load = {"concurrency": args.concurrency, "flows": args.flows, "warmup": args.warmup}
            for number in range(1, args.rounds + 1):
                print(f"round {number}", flush=True)
                for shape, server in (
                    (RS_SHAPE, peer),
                    (RS_SHAPE, ours),
                    (RS_SHAPE, peer_refresh),
                    (USERINFO_SHAPE, peer_refresh),
                    (USERINFO_SHAPE, ours),
                ):
                    runs[shape, server.name].append(b.measure(server, shape=shape, **load))
                if peer_endpoints is not None:
                    for server in (peer_endpoints, ours):
                        runs[ENDPOINTS, server.name].append(
                            b.endpoints(server, concurrency=args.concurrency, flows=args.flows)
                        )
            for server in (ours, peer, peer_refresh, *([peer_endpoints] if peer_endpoints else [])):
                server.stop()
            audit = audit_verify(work / "corridor") if args.rounds else []
            scaling: list[str] = []
            if not args.no_scaling:
                scaling = scale(b, args, rs)
        finally:
            rs.terminate()
            rs.wait()
        if not args.rounds:  # scaling figures only: printed, RESULTS.md left alone
            print("\n".join(scaling))
            return
        block = render(args, runs, audit, scaling, time.monotonic() - started)
        print(block)
        if not args.no_write:
            write_results(block)


def scale(b: Bench, args: argparse.Namespace, rs: subprocess.Popen[bytes]) -> list[str]:
    """Workers 1 and 2 on one SQLite file; CPU per flow against the number of stored rows."""
    lines = [
        "Worker processes on the same SQLite file (both on CPU 0 here: the figure shows what a",
        "second process costs on one core, not what a second core gives):",
        "",
        "| workers | flows/s | AS CPU ms per flow | token p99 ms |",
        "|---|---|---|---|",
    ]
    data = b.work / "corridor"
    for workers in (1, 2):
        server = b.corridor(data, workers=workers, register=False)
        report = b.measure(server, concurrency=args.concurrency, flows=args.flows, warmup=args.warmup)
        server.stop()
        lines.append(
            f"| {workers} | {report['flows_per_second']} | {report['server_cpu_ms_per_flow']} | "
            f"{report['latency_ms']['token']['p99']} |"
        )
    lines += [
        "",
        "Stored grants and access tokens (unexpired) against CPU per flow, 1 worker:",
        "",
        "| stored grants + tokens | flows/s | AS CPU ms per flow | token p99 ms |",
        "|---|---|---|---|",
    ]
    lines += growth(b, args, data, f"sqlite:///{data / 'corridor.db'}", register=False)
    lines += ["", "Audit chains of that SQLite file after the scaling runs (`corridor audit verify`):", ""]
    lines += [f"    {line}" for line in audit_verify(data)]
    if args.postgres:
        with postgres_database(args.postgres) as url:
            lines += [
                "",
                "The same on PostgreSQL (a fresh database on the machine's server, 1 instance):",
                "",
                "| stored grants + tokens | flows/s | AS CPU ms per flow | token p99 ms |",
                "|---|---|---|---|",
            ]
            lines += growth(b, args, data, url, register=True)
            lines += ["", "Audit chains of that PostgreSQL database (`corridor audit verify`):", ""]
            lines += [f"    {line}" for line in audit_verify(data, url)]
    return lines


def growth(b: Bench, args: argparse.Namespace, data: Path, url: str, *, register: bool) -> list[str]:
    """CPU per flow as the stored rows grow: one table row per size in ``--grow``."""
    lines = []
    for rows in (int(n) for n in args.grow.split(",") if n):
        started = time.monotonic()
        if register:  # the first run registers the client, user and resource in the new database
            b.corridor(data, register=True, database_url=url).stop()
            register = False
        seed(url, rows, time.time())
        print(f"  seeded {rows} rows in {time.monotonic() - started:.1f} s", flush=True)
        server = b.corridor(data, register=False, database_url=url)
        report = b.measure(server, concurrency=args.concurrency, flows=args.flows, warmup=args.warmup)
        server.stop()
        lines.append(
            f"| {rows:,} + {rows:,} | {report['flows_per_second']} | {report['server_cpu_ms_per_flow']} | "
            f"{report['latency_ms']['token']['p99']} |"
        )
    return lines


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database for the growth figure, dropped afterwards."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from corridor.store.sql import database_url

    name = "corridor_bench_" + new_id()[:12].lower().replace("-", "_")
    admin = create_engine(database_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
