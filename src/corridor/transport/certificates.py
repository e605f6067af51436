"""Where a client certificate comes from (design.md 5): one interface, two sources.

Both sources put the certificate into the ASGI TLS extension,
``scope["extensions"]["tls"]["client_cert_chain"]`` (PEM strings, leaf first), so the
application reads it in one place, :func:`peer_certificate`:

1. the TLS socket itself, through :class:`TLSExtensionProtocol`, a small uvicorn protocol
   subclass (uvicorn does not hand the peer certificate to the app);
2. a TLS-terminating proxy, through :class:`ForwardedCertificates`, which reads the
   RFC 9440 ``Client-Cert`` header (or nginx's ``$ssl_client_escaped_cert``) only from
   configured proxy addresses, and strips those headers from everyone else.

The TLS layer only collects; the application decides (chain, subject, registered key).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from corridor.core.text import escaping_logger
from corridor.core.x509 import (
    CertificateError,
    from_client_cert_header,
    from_nginx_escaped,
    load_certificate,
    pem,
)

log = escaping_logger("corridor.certificates")  # issue 13 E1

#: RFC 9440 2.2.
CLIENT_CERT = b"client-cert"
#: The header an nginx configuration fills with ``$ssl_client_escaped_cert``.
NGINX_ESCAPED_CERT = b"x-ssl-client-escaped-cert"
_CERT_HEADERS = (CLIENT_CERT, NGINX_ESCAPED_CERT)


def peer_certificate(scope: Scope) -> x509.Certificate | None:
    """The client certificate of this request, from whichever source provided it."""
    tls = scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    try:
        return load_certificate(chain[0])
    except CertificateError:
        return None


class _TLSExtension:
    """Adds the ASGI TLS extension with the verified peer certificate to a uvicorn protocol."""

    app: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        cert = ssl_object.getpeercert(binary_form=True)
        tls = {
            "client_cert_chain": [pem(load_certificate(cert))] if cert else [],
            "tls_version": ssl_object.version(),
        }
        app = self.app

        async def with_tls(scope: Any, receive: Any, send: Any) -> None:
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "tls": tls}}
            await app(scope, receive, send)

        self.app = with_tls


class TLSExtensionProtocol(_TLSExtension, H11Protocol):
    """uvicorn's h11 protocol, plus the ASGI TLS extension with the verified peer certificate."""


class TLSExtensionHttpToolsProtocol(_TLSExtension, HttpToolsProtocol):
    """The same on uvicorn's httptools (llhttp) protocol: the faster parser."""


class ForwardedCertificates:
    """Accept a forwarded client certificate only from trusted proxy addresses (RFC 9440 4,
    RFC 9700 4.13); strip the headers from every other request."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def _is_trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def scope(self, scope: Scope) -> Scope:
        """``scope`` itself when it carries no certificate header (almost every request), else a
        copy without them, with the forwarded certificate in its TLS extension when trusted."""
        headers = scope.get("headers", [])
        forwarded = [(name, value) for name, value in headers if name in _CERT_HEADERS]
        if not forwarded:
            return scope
        scope = {**scope, "headers": [(n, v) for n, v in headers if n not in _CERT_HEADERS]}
        if self._is_trusted(scope):
            certificate = self._parse(forwarded)
            tls = {**(scope.get("extensions", {}).get("tls") or {})}
            tls["client_cert_chain"] = [pem(certificate)] if certificate is not None else []
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": tls}
        else:
            log.warning(
                "ignored a client-certificate header from untrusted %s", (scope.get("client") or ["?"])[0]
            )
        return scope

    @staticmethod
    def _parse(forwarded: list[tuple[bytes, bytes]]) -> x509.Certificate | None:
        if len(forwarded) != 1:
            return None
        name, value = forwarded[0]
        try:
            text = value.decode("latin-1")
            if not text.strip():
                return None
            return from_client_cert_header(text) if name == CLIENT_CERT else from_nginx_escaped(text)
        except CertificateError:
            log.warning("a trusted proxy forwarded an unreadable client certificate")
            return None


class ProxyCertificateHeaders:
    """:class:`ForwardedCertificates` as ASGI middleware (a resource server's, resource/asgi.py)."""

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str]) -> None:
        self.app = app
        self.forwarded = ForwardedCertificates(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = self.forwarded.scope(scope)
        await self.app(scope, receive, send)
