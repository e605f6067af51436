"""Several ``corridor serve`` processes on one PostgreSQL database: the scale-out of issue 7.

Every instance has the same issuer (as behind a load balancer) and listens on its own port;
tests send each request to the instance they choose. Registrations go straight into the shared
database through a Store of the test's own.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from corridor.core.clock import MovableClock
from corridor.store.sql import Store
from corridor.transport.tls import DevTLS
from tests.support import Driver, RunningAS, free_socket

CORRIDOR = [str(Path(sys.executable).parent / "corridor")]
#: The issuer of the cluster: the load balancer's name. Nothing resolves it; requests go to the
#: instances' own ports, while DPoP htu and assertion audiences name the issuer (as behind nginx).
ISSUER = "https://as.cluster.test"


@dataclass
class Instance:
    name: str
    base_url: str
    process: subprocess.Popen[str]
    log: Path
    #: Its Prometheus scrape URL (every instance has a metrics listener, issue 18).
    metrics_url: str = ""

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup (a crashed machine)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_instance(
    name: str, work: Path, tls: DevTLS, database_url: str, *, args: Sequence[str] = (), **settings: str
) -> Instance:
    """``corridor serve`` on free ports with ``settings`` (as environment variables) and ``args``."""
    sock, mtls_sock, metrics_sock = free_socket(), free_socket(), free_socket()
    port, mtls_port = sock.getsockname()[1], mtls_sock.getsockname()[1]
    metrics_port = metrics_sock.getsockname()[1]
    for unused in (sock, mtls_sock, metrics_sock):
        unused.close()
    data_dir = work / name
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "serve.log"
    env = {
        **os.environ,
        "CORRIDOR_DEV_MODE": "false",
        "CORRIDOR_TLS_CERT_FILE": str(tls.cert_file),
        "CORRIDOR_TLS_KEY_FILE": str(tls.key_file),
        "CORRIDOR_LOG_LEVEL": "warning",
        "CORRIDOR_METRICS_PORT": str(metrics_port),
        **{f"CORRIDOR_{k.upper()}": v for k, v in settings.items()},
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                *CORRIDOR,
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--mtls-port",
                str(mtls_port),
                "--issuer",
                ISSUER,
                "--database",
                database_url,
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    base = f"https://localhost:{port}"
    wait_until_up(base, tls, process, log)
    metrics_port = int(settings.get("metrics_port", metrics_port))
    return Instance(name, base, process, log, f"http://127.0.0.1:{metrics_port}/metrics")


def wait_until_up(base: str, tls: DevTLS, process: subprocess.Popen[str], log: Path) -> None:
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    deadline = time.time() + 30
    while True:
        try:
            if httpx.get(base + "/jwks", verify=context, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.time() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"corridor serve did not start: {log.read_text(errors='replace')}")
        time.sleep(0.1)


def stop_instance(instance: Instance) -> str:
    if instance.process.poll() is None:
        instance.process.send_signal(signal.SIGINT)
        try:
            instance.process.wait(15)
        except subprocess.TimeoutExpired:
            instance.process.kill()
            instance.process.wait()
    return instance.output()


@dataclass
class Cluster:
    instances: list[Instance]
    store: Store
    tls: DevTLS
    database_url: str
    work: Path

    def driver(self, instance: int = 0) -> Driver:
        """A black-box client whose requests go to ``instance`` (change ``driver.base`` to move)."""
        running = RunningAS(
            ISSUER,
            self.tls,
            MovableClock(),
            self.store,
            None,
            self.work,
            base_url=self.instances[instance].base_url,
        )
        return Driver(running)

    def url(self, instance: int, path: str) -> str:
        return self.instances[instance].base_url + path


@contextmanager
def cluster(work: Path, tls: DevTLS, database_url: str, count: int = 3, **settings: str) -> Iterator[Cluster]:
    store = Store(database_url)
    store.migrate()
    with ExitStack() as stack:
        instances: list[Instance] = []
        for i in range(count):
            instance = start_instance(f"as{i}", work, tls, database_url, **settings)
            instances.append(instance)
            stack.callback(stop_instance, instance)
        try:
            yield Cluster(instances, store, tls, database_url, work)
        finally:
            store.close()
    for instance in instances:
        output = instance.output()
        assert "Traceback" not in output, output
