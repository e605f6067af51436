"""``make bench``: Corridor against panva's oidc-provider (bench/peer), interleaved, and Corridor's
scaling figures; the results replace the generated part of bench/RESULTS.md.

* Both servers run the same complete flow (bench/driver.py) with the same client key, the same
  resource indicator and the same resource server (bench/resource.py), one after the other:
  peer, Corridor, peer, Corridor, ... (``--rounds``), each run after its own warm-up. Absolute
  figures on a shared machine drift by 20-30 % over minutes; the ratios of neighbouring runs are
  what we report.
* Pinning (``taskset``): the authorization servers on CPU 0, the driver and the resource server
  on CPU 1, so the AS under test has a core to itself and its CPU per flow is its own.
* Corridor runs as ``corridor serve`` on its embedded default (SQLite in WAL mode, a durable
  store), oidc-provider on its default in-memory adapter.
* Scaling: Corridor with 1 and 2 worker processes (``--workers``) on the same SQLite file, and
  CPU per flow with 1k, 100k and 1M stored grants and access tokens (rows inserted before the
  server starts; all unexpired, so nothing is purged away).

    .venv/bin/python -m bench.run [--rounds 3] [--flows 300] [--concurrency 8] [--no-scaling]
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.driver import Target, run
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

    def peer(self) -> Server:
        env = {
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
        server = Server("oidc-provider", line["issuer"], process, (process.pid,))
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

    def measure(self, server: Server, *, concurrency: int, flows: int, warmup: int) -> dict[str, Any]:
        results = asyncio.run(
            run(
                self.target(server),
                concurrency=concurrency,
                flows=flows,
                warmup=warmup,
                server_pid=server.pids,
            )
        )
        report = results.report()
        print(
            f"  {server.name:<14} {report['flows_per_second']:>8.1f} flows/s  "
            f"{report['server_cpu_ms_per_flow']:>7.2f} CPU ms/flow  "
            f"token p99 {report['latency_ms'].get('token', {}).get('p99', 0):>7.1f} ms  "
            f"failures {sum(report['failures'].values())}  busy sign-ins retried {report['busy_logins']}",
            flush=True,
        )
        for reason, count in sorted(report["failures"].items(), key=lambda item: -item[1]):
            print(f"    {count:>5}  {reason}", flush=True)
        return report


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


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, Node {node}"


def render(args: argparse.Namespace, rounds: dict[str, list[dict[str, Any]]], scaling: list[str]) -> str:
    def series(name: str, key: str) -> list[float]:
        out = []
        for report in rounds[name]:
            if key == "token_p99":
                out.append(report["latency_ms"]["token"]["p99"])
            else:
                out.append(report[key])
        return out

    peer, ours = "oidc-provider", "corridor"
    lines = [
        BEGIN,
        f"## Corridor vs oidc-provider (`make bench`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {machine()}. {args.rounds} interleaved rounds (peer, Corridor, ...), each "
        f"{args.flows} flows at concurrency {args.concurrency} after {args.warmup} warm-up flows; "
        "servers on CPU 0, driver and resource server on CPU 1. Figures are median (min-max).",
        "",
        "| | oidc-provider 9.13.3 (memory) | Corridor (SQLite WAL) | ratio Corridor/peer (median, range) |",
        "|---|---|---|---|",
    ]
    for label, key, better in (
        ("flows/s", "flows_per_second", "higher is better"),
        ("AS CPU ms per flow", "server_cpu_ms_per_flow", "lower is better"),
        ("token endpoint p99 ms", "token_p99", "lower is better"),
    ):
        p, c = series(peer, key), series(ours, key)
        ratios = [b / a for a, b in zip(p, c, strict=True) if a]
        lines.append(
            f"| {label} ({better}) | {spread(p)} | {spread(c)} | **{statistics.median(ratios):.2f}** "
            f"({min(ratios):.2f}-{max(ratios):.2f}) |"
        )
    failures = {name: sum(sum(r["failures"].values()) for r in reports) for name, reports in rounds.items()}
    lines += ["", f"Failed flows: {failures}.", ""]
    steps = sorted(rounds[ours][-1]["latency_ms"])
    lines += [
        "Per-step latency of the last round, p50 / p99 ms:",
        "",
        "| step | oidc-provider | Corridor |",
        "|---|---|---|",
    ]
    for step in steps:
        a = rounds[peer][-1]["latency_ms"].get(step, {})
        b = rounds[ours][-1]["latency_ms"].get(step, {})
        lines.append(
            f"| {step} | {a.get('p50', '-')} / {a.get('p99', '-')} "
            f"| {b.get('p50', '-')} / {b.get('p99', '-')} |"
        )
    if scaling:
        lines += ["", "### Scaling (Corridor)", "", *scaling]
    lines += ["", "Reproduce: `make bench` (or `.venv/bin/python -m bench.run --help`).", END]
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="0: only the scaling figures, printed")
    parser.add_argument("--flows", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
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
    with tempfile.TemporaryDirectory(prefix="corridor-bench-") as tmp, bench(Path(tmp)) as b:
        work = Path(tmp)
        print(f"work: {work}; server output in {b.log}", flush=True)
        peer = b.peer()
        ours = b.corridor(work / "corridor")
        rs = b.resource_server([peer.issuer, ours.issuer])
        try:
            rounds: dict[str, list[dict[str, Any]]] = {"oidc-provider": [], "corridor": []}
            for number in range(1, args.rounds + 1):
                print(f"round {number}", flush=True)
                for server in (peer, ours):
                    rounds[server.name].append(
                        b.measure(server, concurrency=args.concurrency, flows=args.flows, warmup=args.warmup)
                    )
            ours.stop()
            peer.stop()
            scaling: list[str] = []
            if not args.no_scaling:
                scaling = scale(b, args, rs)
        finally:
            rs.terminate()
            rs.wait()
        if not args.rounds:  # scaling figures only: printed, RESULTS.md left alone
            print("\n".join(scaling))
            return
        block = render(args, rounds, scaling)
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
