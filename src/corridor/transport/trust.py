"""The mTLS listener's trust store (design.md 5, RFC 8705) and the mark of its requests.

Python's ``ssl`` aborts the handshake on a client certificate it cannot verify, so the
listener trusts the configured PKI CA bundle plus every certificate registered in a
client's JWKS ``x5c`` (self-signed client certificates, RFC 8705 2.2). The store follows
registration: :meth:`MtlsTrust.refresh` rebuilds the context when the set changes, and an
SNI callback hands each new handshake the newest context.

Trusting registered certificates at the TLS layer only lets them finish a handshake; the
application decides: tls_client_auth re-verifies the chain against the CA bundle alone,
self_signed_tls_client_auth compares the certificate exactly with the registered one, and
CA:TRUE certificates are refused at registration, so none can vouch for another.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from corridor.core.x509 import load_certificate, pem
from corridor.transport.tls import server_ssl_context

LISTENER_EXTENSION = "corridor.listener"


class MtlsTrust:
    def __init__(self, cert_file: str | Path, key_file: str | Path, ca_file: str = "") -> None:
        self.cert_file, self.key_file, self.ca_file = str(cert_file), str(key_file), ca_file
        self._lock = threading.Lock()
        self._digest = b""
        self.context = self._build([])
        # The context handed to the listener: every handshake switches to the newest one.
        self.listener_context = self._build([])
        self.listener_context.sni_callback = self._select

    def _build(self, certificates: list[bytes]) -> ssl.SSLContext:
        context = server_ssl_context(self.cert_file, self.key_file)
        context.verify_mode = ssl.CERT_OPTIONAL
        if self.ca_file:
            context.load_verify_locations(self.ca_file)
        pems = "".join(pem(load_certificate(c)) for c in certificates)
        if pems:
            context.load_verify_locations(cadata=pems)
        return context

    def _select(self, ssl_object: Any, server_name: str | None, _: ssl.SSLContext) -> None:
        ssl_object.context = self.context

    def refresh(self, registered: Iterable[bytes]) -> bool:
        """Rebuild the trust store from the registered certificates (DER); True if it changed."""
        certificates = sorted(set(registered))
        digest = hashlib.sha256(b"".join(certificates)).digest()
        with self._lock:
            if digest == self._digest:
                return False
            self.context = self._build(certificates)
            self._digest = digest
        return True


class MarkListener:
    """Tags requests of the mTLS listener, so endpoint URLs (and DPoP ``htu``) are the aliases."""

    def __init__(self, app: ASGIApp, name: str = "mtls") -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {
                **scope,
                "extensions": {**(scope.get("extensions") or {}), LISTENER_EXTENSION: self.name},
            }
        await self.app(scope, receive, send)


def via_mtls_listener(scope: Scope) -> bool:
    return bool((scope.get("extensions") or {}).get(LISTENER_EXTENSION) == "mtls")
