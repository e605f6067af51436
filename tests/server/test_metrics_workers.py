"""Issue 18: ``corridor serve --workers 2`` with ``metrics_port``: per-process metrics, worker i on
``metrics_port + i``; the two scrapes together count every request once."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from corridor.transport.tls import DevTLS
from tests.cluster.support import start_instance, stop_instance
from tests.support import free_socket


def two_free_ports() -> int:
    """A port P with P + 1 free too."""
    while True:
        first = free_socket()
        port: int = first.getsockname()[1]
        try:
            with socket.socket() as second:
                second.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
        finally:
            first.close()


def jwks_requests(url: str) -> float:
    text = httpx.get(url, timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "corridor_http_requests_total" and sample.labels["endpoint"] == "/jwks"
    )


def worker_ready(url: str, within: float = 60.0) -> httpx.Response:
    """The worker's /readyz once it says ready (or its last answer): start_instance waited for the
    first worker to answer on the shared port, the other may still be starting (503 "starting")."""
    deadline = time.monotonic() + within
    while True:
        ready = httpx.get(url, timeout=10)
        if ready.status_code == 200 or time.monotonic() > deadline:
            return ready
        time.sleep(0.2)


def test_each_worker_serves_its_own_metrics(tmp_path: Path, tls: DevTLS) -> None:
    metrics_port = two_free_ports()
    database = f"sqlite:///{tmp_path / 'corridor.db'}"
    instance = start_instance(
        "workers", tmp_path, tls, database, args=("--workers", "2"), metrics_port=str(metrics_port)
    )
    try:
        urls = [f"http://127.0.0.1:{metrics_port + i}/metrics" for i in (0, 1)]
        for url in urls:  # both workers are up, each serving its own listener
            ready = worker_ready(url.replace("/metrics", "/readyz"))
            assert ready.status_code == 200, ready.text
        before = sum(jwks_requests(url) for url in urls)
        with httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_file)), timeout=10) as http:
            for _ in range(20):
                assert http.get(instance.base_url + "/jwks").status_code == 200
        assert sum(jwks_requests(url) for url in urls) - before == 20
    finally:
        output = stop_instance(instance)
    assert f"metrics:     http://127.0.0.1:{metrics_port}-{metrics_port + 1}/metrics" in output
    assert "Traceback" not in output, output
