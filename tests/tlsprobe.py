"""TLS probes for policy tests: a handshake with one protocol version and chosen suites, and
a permissive server that shows the probe itself can speak what the policy refuses
(design.md 8: every negative transport test has a positive control)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: A TLS 1.0-1.2 CBC suite our listeners refuse; the permissive server accepts it.
OLD_SUITES = "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"


def handshake(port: int, ca: str, version: ssl.TLSVersion, ciphers: str) -> str:
    """Handshake with one protocol version and the given suites; returns the negotiated suite."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    context.minimum_version = version
    context.maximum_version = version
    context.set_ciphers(ciphers)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None  # the handshake is done
        return str(cipher[0])


@contextmanager
def permissive_server(cert_file: Path, key_file: Path) -> Iterator[int]:
    """A server that accepts anything (TLS 1.0, CBC suites); yields its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()
