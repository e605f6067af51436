"""Bounded input and bounded time on every listener (design.md 5c, issue 13 B1 and B2): the request
line and headers are capped at 16 KiB in all (431 and the connection closed beyond), and a
connection that is silent, or trickles its head or body, or idles between requests, is closed.
Each through a real TLS socket against a real uvicorn server (the AS's main listener, its mTLS
listener, and the demo API); each refusal has a positive control on the same listener."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corridor.transport.tls import DevTLS, ensure_dev_tls
from tests.resource.test_demo_api import demo_api
from tests.support import RunningAS, free_socket, running_as
from tests.test_serve import corridor

#: The cap (design.md 5c): request line and headers, 16 KiB in all.
HEAD_LIMIT = 16 * 1024
#: Small timeouts for these tests (settings), so that a timeout takes about a second.
SHORT: dict[str, Any] = {"request_head_timeout": 1.0, "request_body_timeout": 1.0, "keep_alive_timeout": 1.0}
#: A generous bound for "the server closed it" (the timeouts above are 1 s).
CLOSED_WITHIN = 15.0


@pytest.fixture(scope="module")
def limited_as(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS) -> Iterator[RunningAS]:
    with running_as(tmp_path_factory.mktemp("limits"), tls, **SHORT) as running:
        yield running


@pytest.fixture(params=["main", "mtls"])
def port(request: pytest.FixtureRequest, limited_as: RunningAS) -> int:
    """Both listeners of the AS have the same limits."""
    assert limited_as.server is not None
    return limited_as.port if request.param == "main" else limited_as.server.settings.mtls_port


def connect(port: int, ca_file: Path) -> ssl.SSLSocket:
    """A TLS connection, handshake done (the limits are about what comes after it)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=CLOSED_WITHIN)
    return ssl.create_default_context(cafile=str(ca_file)).wrap_socket(raw, server_hostname="localhost")


def head(size: int, path: str = "/.well-known/openid-configuration") -> bytes:
    """A GET whose request line and headers take exactly ``size`` bytes."""
    start = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Padding: ".encode()
    end = b"\r\nConnection: close\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


def read_until_closed(sock: ssl.SSLSocket, within: float = CLOSED_WITHIN) -> bytes:
    """Everything the server sends until it closes the connection; fails if it does not close."""
    sock.settimeout(within)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, BrokenPipeError):
            return received
        except TimeoutError:
            pytest.fail(f"the server kept the connection open for {within} s; got {received[:80]!r}")
        if not chunk:
            return received
        received += chunk


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def is_closed(sock: ssl.SSLSocket) -> bool:
    """Whether the server has closed (EOF or reset); a response before the close is read away."""
    sock.settimeout(0.05)
    try:
        while chunk := sock.recv(65536):
            del chunk
        return True
    except TimeoutError:
        return False
    except (ConnectionResetError, ssl.SSLEOFError, BrokenPipeError, ssl.SSLZeroReturnError):
        return True


def trickle(sock: ssl.SSLSocket, data: bytes, interval: float, within: float = CLOSED_WITHIN) -> float:
    """Send ``data`` one byte per ``interval`` until the server closes; the seconds it took."""
    started = time.monotonic()
    for byte in data:
        if time.monotonic() - started > within:
            break
        try:
            sock.sendall(bytes([byte]))
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return time.monotonic() - started
        if is_closed(sock):
            return time.monotonic() - started
        time.sleep(interval)
    pytest.fail(f"the server still read a trickle after {time.monotonic() - started:.1f} s")


# -- B1: request line and headers, 16 KiB in all ----------------------------------------------


def test_a_head_over_16_kib_gets_431_and_the_connection_closed(limited_as: RunningAS, port: int) -> None:
    """issue 13 B1, design.md 5c: 20 KiB of request head: 431, then the server closes."""
    with connect(port, limited_as.tls.ca_file) as sock:
        sock.sendall(head(20 * 1024)[:-4])  # still incomplete: refused while it arrives
        response = read_until_closed(sock)
    assert status(response) == 431, response[:200]
    assert b"connection: close" in response.lower()


def test_a_complete_head_over_16_kib_in_one_piece_gets_431(limited_as: RunningAS, port: int) -> None:
    """issue 13 B1: the same when the whole oversized head arrives at once (the parser finishes it)."""
    with connect(port, limited_as.tls.ca_file) as sock:
        sock.sendall(head(HEAD_LIMIT + 100))
        response = read_until_closed(sock)
    assert status(response) == 431, response[:200]


def test_a_15_kib_head_is_served(limited_as: RunningAS, port: int) -> None:
    """Positive control for the 431 tests: 15 KiB of head on the same listener is served."""
    path = "/.well-known/openid-configuration"
    with connect(port, limited_as.tls.ca_file) as sock:
        sock.sendall(head(15 * 1024, path))
        response = read_until_closed(sock)
    assert status(response) == 200, response[:200]
    assert b'"issuer"' in response


def test_others_are_served_while_a_huge_header_trickles_in(limited_as: RunningAS) -> None:
    """issue 13 B1: a client streaming a header of up to 150 MB is cut off at the cap (431) and
    never holds up another client's request."""
    outcome: dict[str, int | bytes] = {}

    def huge_header() -> None:
        with connect(limited_as.port, limited_as.tls.ca_file) as sock:
            sent = 0
            try:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Huge: ")
                chunk = b"a" * 65536
                while sent < 150 * 1024 * 1024:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, TimeoutError):
                pass
            outcome["sent"] = sent
            outcome["response"] = read_until_closed(sock)

    sender = threading.Thread(target=huge_header)
    sender.start()
    try:
        with limited_as.http() as http:
            for _ in range(5):
                started = time.monotonic()
                served = http.get(limited_as.issuer + "/.well-known/openid-configuration")
                assert served.status_code == 200
                assert time.monotonic() - started < 2.0
    finally:
        sender.join(60)
    assert not sender.is_alive()
    assert int(outcome["sent"]) < 10 * 1024 * 1024, outcome["sent"]
    response = outcome["response"]
    assert isinstance(response, bytes)
    assert response == b"" or status(response) == 431, response[:200]


# -- B2: bounded time ---------------------------------------------------------------------------


def test_a_silent_connection_is_closed(limited_as: RunningAS, port: int) -> None:
    """issue 13 B2: after the handshake, nothing sent: the server closes (head timeout)."""
    with connect(port, limited_as.tls.ca_file) as sock:
        response = read_until_closed(sock)
    assert response == b""  # nothing asked, nothing answered (a browser's preconnect, say)


def test_a_partial_head_not_finished_in_time_gets_408(limited_as: RunningAS, port: int) -> None:
    """issue 13 B2, RFC 9110 15.5.9: part of a head, then silence: 408 and the connection closed."""
    with connect(port, limited_as.tls.ca_file) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: local")
        response = read_until_closed(sock)
    assert status(response) == 408, response[:200]
    assert b"connection: close" in response.lower()


def test_a_trickled_head_is_closed(limited_as: RunningAS, port: int) -> None:
    """issue 13 B2: a head arriving byte by byte (each byte well within any idle timeout) is cut
    off once the head timeout is over, although the connection is never idle for long."""
    with connect(port, limited_as.tls.ca_file) as sock:
        took = trickle(sock, head(4096), interval=0.3)
    assert took < CLOSED_WITHIN


def test_a_trickled_body_is_closed(limited_as: RunningAS, port: int) -> None:
    """issue 13 B2: a complete head, then a body byte by byte: closed once the body timeout is over."""
    body = b"client_id=" + b"x" * 200
    with connect(port, limited_as.tls.ca_file) as sock:
        sock.sendall(
            b"POST /par HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        took = trickle(sock, body, interval=0.3)
    assert took < CLOSED_WITHIN


def test_an_idle_keep_alive_connection_is_closed(limited_as: RunningAS, port: int) -> None:
    """issue 13 B2: after a served request (positive control), an idle kept-alive connection is closed."""
    with connect(port, limited_as.tls.ca_file) as sock:
        sock.sendall(b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: localhost\r\n\r\n")
        response = read_until_closed(sock)
    assert status(response) == 200, response[:200]


def test_a_prompt_request_is_served_on_the_same_settings(limited_as: RunningAS, port: int) -> None:
    """Positive control for the timeout tests: a client that sends at once is served."""
    with connect(port, limited_as.tls.ca_file) as sock:
        sock.sendall(
            b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        response = read_until_closed(sock, within=5)
    assert status(response) == 200


# -- the demo API (corridor demo-api) -----------------------------------------------------------


def test_the_demo_api_has_the_same_limits(tmp_path: Path) -> None:
    """issue 13 B1 and B2 on the demo API's listener (settings from CORRIDOR_* variables)."""
    data_dir = tmp_path / "data"
    assert corridor("db", "upgrade", data_dir=data_dir).returncode == 0
    ensure_dev_tls(data_dir / "tls")  # what `corridor serve` would have made
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, **{f"CORRIDOR_{name.upper()}": str(value) for name, value in SHORT.items()}}
    with demo_api(data_dir, port, "https://localhost:1", env=env) as api:
        path = "/.well-known/oauth-protected-resource"
        with connect(port, api.ca_file) as conn:  # positive control
            conn.sendall(head(15 * 1024, path))
            assert status(read_until_closed(conn)) == 200
        with connect(port, api.ca_file) as conn:
            conn.sendall(head(20 * 1024, path)[:-4])
            assert status(read_until_closed(conn)) == 431
        with connect(port, api.ca_file) as conn:
            assert read_until_closed(conn) == b""
        with connect(port, api.ca_file) as conn:
            assert trickle(conn, head(4096, path), interval=0.3) < CLOSED_WITHIN
        with httpx.Client(verify=ssl.create_default_context(cafile=str(api.ca_file))) as http:
            assert http.get(api.url + path).status_code == 200
