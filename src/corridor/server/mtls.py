"""The AS's rules for mTLS clients (RFC 8705): which certificates its clients registered.

The listener's trust store and the mark of its requests are transport
(:mod:`corridor.transport.trust`); this module says what the AS feeds them and accepts.
"""

from __future__ import annotations

from corridor.server.clients import ClientRecord
from corridor.store.sql import Store


def registered_certificates(store: Store) -> list[bytes]:
    """RFC 8705 2.2: the DER of every certificate registered in a client's JWKS ``x5c``."""
    return [cert for row in store.clients.all() for cert in ClientRecord.from_row(row).certificates]


def registered(certificate_der: bytes, client: ClientRecord) -> bool:
    """RFC 8705 2.2: the presented certificate is exactly one the client registered."""
    return any(certificate_der == c for c in client.certificates)
