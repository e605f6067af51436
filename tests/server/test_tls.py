"""TLS policy of the listener (AS1, AS3, AS6; FAPI2 5.2.1/5.2.2, RFC 9325): TLS 1.0/1.1 refused,
TLS 1.2 only with ECDHE + AEAD suites. Each refusal has a positive control: the same client
completes the handshake against a permissive server."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import pytest

from corridor.transport.tls import DevTLS
from tests.support import Driver
from tests.tlsprobe import OLD_SUITES, handshake, permissive_server

# Old protocol versions are deprecated in Python's ssl: exactly what these tests use on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")


@pytest.fixture(scope="module")
def permissive_port(tls: DevTLS) -> Iterator[int]:
    with permissive_server(tls.cert_file, tls.key_file) as port:
        yield port


@pytest.fixture(params=["main", "mtls"])
def port(request: pytest.FixtureRequest, driver: Driver) -> int:
    """Both listeners follow the same policy (the mTLS one serves the RFC 8705 aliases)."""
    assert driver.as_.server is not None
    return driver.as_.port if request.param == "main" else driver.as_.server.settings.mtls_port


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_below_1_2_is_refused(
    driver: Driver, port: int, permissive_port: int, version: ssl.TLSVersion
) -> None:
    ca = str(driver.as_.tls.ca_file)
    assert handshake(permissive_port, ca, version, OLD_SUITES)  # positive control
    with pytest.raises(ssl.SSLError):
        handshake(port, ca, version, OLD_SUITES)


@pytest.mark.parametrize(
    "suite", ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256"]
)
def test_tls12_non_recommended_suites_are_refused(
    driver: Driver, port: int, permissive_port: int, suite: str
) -> None:
    """AS3: CBC suites and static-RSA key exchange are not BCP 195 recommended."""
    ca = str(driver.as_.tls.ca_file)
    ciphers = f"{suite}:@SECLEVEL=0"
    if suite != "AES128-GCM-SHA256":  # our dev certificate is ECDSA: static RSA never fits it
        assert handshake(permissive_port, ca, ssl.TLSVersion.TLSv1_2, ciphers) == suite  # positive control
    with pytest.raises(ssl.SSLError):
        handshake(port, ca, ssl.TLSVersion.TLSv1_2, ciphers)


@pytest.mark.parametrize(
    "suite",
    ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"],
)
def test_tls12_recommended_suites_work(driver: Driver, port: int, suite: str) -> None:
    assert handshake(port, str(driver.as_.tls.ca_file), ssl.TLSVersion.TLSv1_2, suite) == suite


def test_tls13_works(driver: Driver, port: int) -> None:
    context = ssl.create_default_context(cafile=str(driver.as_.tls.ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() == "TLSv1.3"


def test_plain_http_is_not_served(driver: Driver, port: int) -> None:
    """AS1: the listener speaks only TLS; a plain HTTP request gets no HTTP answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = raw.recv(100)
    assert not data.startswith(b"HTTP/")
