"""Issue 7 faults, through real HTTP on PostgreSQL: an instance killed with SIGKILL under load, and
PostgreSQL itself restarted under load. Clients behave like a load balancer would make them:
a connection that fails is retried at another instance; a 503 is retried after Retry-After
(here: at once, to keep the outage busy)."""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from corridor.transport.tls import DevTLS
from tests.cluster.support import Cluster, cluster
from tests.support import Browser, Client, Driver, decode_jwt, free_socket, postgres_database

USERS = 6


@dataclass
class Load:
    """Complete flows from several threads, each user agent on its own instance until it fails."""

    c: Cluster
    statuses: Counter[int] = field(default_factory=Counter)
    unavailable_without_retry_after: int = 0
    issued: list[str] = field(default_factory=list)  # jti of every access token a client received
    transport_errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, response: httpx.Response) -> httpx.Response:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code == 503 and "retry-after" not in response.headers:
                self.unavailable_without_retry_after += 1
        return response

    def user(self, number: int, client: Client, username: str) -> None:
        alive = [i for i, inst in enumerate(self.c.instances) if inst.process.poll() is None]
        instance = alive[number % len(alive)]
        driver = self.c.driver(instance)
        browser = driver.browser()
        browser.base = driver.base
        while not self.stop.is_set():
            try:
                self.one_flow(driver, browser, client, username)
            except httpx.TransportError:
                with self.lock:
                    self.transport_errors += 1
                alive = [i for i, inst in enumerate(self.c.instances) if inst.process.poll() is None]
                instance = alive[(alive.index(instance) + 1) % len(alive)] if instance in alive else alive[0]
                driver.base = browser.base = self.c.instances[instance].base_url

    def one_flow(self, driver: Driver, browser: Browser, client: Client, username: str) -> None:
        response, flow = driver.par(client)
        self.note(response)
        if response.status_code != 201:
            return
        final = driver.authorize(client, flow, browser=browser, username=username)
        self.note(final)
        if not flow.code:
            return
        tokens = self.note(driver.redeem(client, flow))
        if tokens.status_code == 200:
            _, claims = decode_jwt(tokens.json()["access_token"])
            with self.lock:
                self.issued.append(claims["jti"])

    def run(self, client: Client, username: str) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.user, args=(n, client, username), daemon=True) for n in range(USERS)
        ]
        for thread in threads:
            thread.start()
        return threads

    def finish(self, threads: list[threading.Thread]) -> None:
        self.stop.set()
        for thread in threads:
            thread.join(60)
            assert not thread.is_alive()

    def assert_nothing_committed_was_lost(self) -> None:
        for jti in self.issued:
            stored = self.c.store.grants.access_token(jti)
            assert stored is not None, f"token {jti} was issued but is not stored"


@pytest.fixture
def fresh_cluster(tmp_path: Path, tls: DevTLS, postgres_admin: str) -> Iterator[Cluster]:
    with postgres_database(postgres_admin) as url, cluster(tmp_path, tls, url) as running:
        yield running


def settle(load: Load, flows: int, timeout: float = 60) -> None:
    """Wait (polling, not sleeping through a lifetime) until ``flows`` more tokens were issued."""
    target = len(load.issued) + flows
    deadline = time.monotonic() + timeout
    while len(load.issued) < target:
        assert time.monotonic() < deadline, f"load stalled: {load.statuses}"
        time.sleep(0.05)


def test_an_instance_killed_under_load(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    driver = c.driver(0)
    client, username = driver.add_client(), driver.add_user()
    load = Load(c)
    threads = load.run(client, username)
    try:
        settle(load, 30)
        c.instances[2].kill()  # SIGKILL, mid-flight
        settle(load, 60)  # the other two serve on
    finally:
        load.finish(threads)
    assert not [s for s in load.statuses if s >= 500], load.statuses
    assert load.transport_errors > 0, "no user agent was on the killed instance"
    assert load.statuses[200] + load.statuses[201] > 0
    load.assert_nothing_committed_was_lost()


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of this test's own (design.md 8: an outage test never stops the
    shared one): ``initdb`` under ``runuser -u postgres``, trust auth, 127.0.0.1 on a free port."""

    bin: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self.ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    versions = (
        sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if Path("/usr/lib/postgresql").is_dir()
        else []
    )
    if not versions or shutil.which("runuser") is None or os.geteuid() != 0:
        reason = "needs root, runuser and Debian's PostgreSQL binaries (initdb, pg_ctl)"
        if os.environ.get("CI"):
            pytest.fail(reason + " under CI")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="corridor-pg-"))
    data = root / "data"
    data.mkdir()
    shutil.chown(root, "postgres")
    shutil.chown(data, "postgres")
    bin_dir = versions[-1].parent
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    cluster_ = PrivatePostgres(bin_dir, data, free_socket().getsockname()[1])
    cluster_.start()
    try:
        yield cluster_
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            cluster_.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_postgresql_restarted_under_load(
    tmp_path: Path, tls: DevTLS, private_postgres: PrivatePostgres
) -> None:
    with postgres_database(private_postgres.url) as url, cluster(tmp_path, tls, url) as c:
        _restart_under_load(c, private_postgres)


def probes(c: Cluster, path: str) -> list[tuple[int, str]]:
    """Status and ``status`` member of each instance's /healthz or /readyz, each within 5 s."""
    with httpx.Client(verify=ssl.create_default_context(cafile=str(c.tls.ca_file)), timeout=5) as http:
        answers = [http.get(c.url(i, path)) for i in range(len(c.instances))]
    return [(a.status_code, a.json()["status"]) for a in answers]


def metric(c: Cluster, i: int, name: str, **labels: str) -> float:
    """One sample of instance ``i``'s metrics (0 when it has none yet)."""
    text = httpx.get(c.instances[i].metrics_url, timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def _restart_under_load(c: Cluster, postgres: PrivatePostgres) -> None:
    driver = c.driver(0)
    client, username = driver.add_client(), driver.add_user()
    load = Load(c)
    threads = load.run(client, username)
    try:
        settle(load, 30)
        assert probes(c, "/readyz") == [(200, "ready")] * len(c.instances)
        postgres.stop()
        try:
            deadline = time.monotonic() + 30
            while load.statuses[503] < 20:  # requests keep arriving during the outage
                assert time.monotonic() < deadline, load.statuses
                time.sleep(0.05)
            # Issue 18: while the database is down every instance says it is not ready (within
            # readiness_timeout), and that it is alive.
            assert probes(c, "/readyz") == [(503, "unavailable")] * len(c.instances)
            assert probes(c, "/healthz") == [(200, "ok")] * len(c.instances)
        finally:
            postgres.start()
        settle(load, 60)  # every instance recovers by itself
        assert probes(c, "/readyz") == [(200, "ready")] * len(c.instances)
    finally:
        load.finish(threads)
    assert load.statuses[500] == 0 and not [s for s in load.statuses if s > 503], load.statuses
    assert load.unavailable_without_retry_after == 0
    # Issue 18: the outage's 503s and database errors are counted where they were answered.
    outage_503s = sum(
        metric(c, i, "corridor_database_unavailable_responses_total") for i in range(len(c.instances))
    )
    assert outage_503s >= 1
    assert all(
        metric(c, i, "corridor_readiness_failures_total", reason="database") >= 1
        for i in range(len(c.instances))
    )
    load.assert_nothing_committed_was_lost()
    # Each instance, on its own, completes a flow again.
    for i in range(len(c.instances)):
        d = c.driver(i)
        _, tokens = d.full_flow(client)
        assert tokens["token_type"] == "DPoP"
