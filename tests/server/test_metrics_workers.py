"""Issue 18: ``corridor serve --workers 2`` with ``metrics_port``: per-process metrics, worker i on
``metrics_port + i``; the two scrapes together count every request once."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from corridor.transport.tls import DevTLS
from tests.cluster.support import CORRIDOR, ISSUER, stop_instance, wait_until_up
from tests.cluster.support import Instance as Process
from tests.support import free_socket


def two_free_ports() -> int:
    """A port P with P + 1 free too."""
    while True:
        first = free_socket()
        port = first.getsockname()[1]
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


def test_each_worker_serves_its_own_metrics(tmp_path: Path, tls: DevTLS) -> None:
    main, mtls = free_socket(), free_socket()
    port, mtls_port = main.getsockname()[1], mtls.getsockname()[1]
    main.close()
    mtls.close()
    metrics_port = two_free_ports()
    env = {
        **os.environ,
        "CORRIDOR_DEV_MODE": "false",
        "CORRIDOR_TLS_CERT_FILE": str(tls.cert_file),
        "CORRIDOR_TLS_KEY_FILE": str(tls.key_file),
        "CORRIDOR_LOG_LEVEL": "warning",
        "CORRIDOR_METRICS_PORT": str(metrics_port),
    }
    (tmp_path / "data").mkdir()
    log = tmp_path / "serve.log"
    command = [
        *CORRIDOR,
        "serve",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(port),
        "--mtls-port",
        str(mtls_port),
        "--issuer",
        ISSUER,
        "--workers",
        "2",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
    base = f"https://localhost:{port}"
    instance = Process("workers", base, process, log)
    try:
        wait_until_up(base, tls, process, log)
        urls = [f"http://127.0.0.1:{metrics_port + i}/metrics" for i in (0, 1)]
        for url in urls:  # both workers are up and serving their own listener
            wait = httpx.get(url.replace("/metrics", "/readyz"), timeout=10)
            assert wait.status_code == 200, wait.text
        before = sum(jwks_requests(url) for url in urls)
        with httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_file)), timeout=10) as http:
            for _ in range(20):
                assert http.get(base + "/jwks").status_code == 200
        assert sum(jwks_requests(url) for url in urls) - before == 20
    finally:
        output = stop_instance(instance)
    assert f"metrics:     http://127.0.0.1:{metrics_port}-{metrics_port + 1}/metrics" in output
    assert "Traceback" not in output, output
