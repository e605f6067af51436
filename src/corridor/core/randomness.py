"""Unguessable values. FAPI2 5.4.1-4: every credential carries at least 128 bits of entropy."""

from __future__ import annotations

import hashlib
import secrets

from corridor.core.b64 import b64url_encode

#: 256 bits of entropy for codes, tokens, request_uri references and session ids.
TOKEN_BYTES = 32


def new_secret_token() -> str:
    """43 base64url characters carrying 256 random bits (FAPI2 5.4.1-4)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_id() -> str:
    """A random identifier (128 bits) for records that are not credentials."""
    return secrets.token_hex(16)


def token_hash(value: str) -> str:
    """What the store keeps instead of a credential: SHA-256, base64url."""
    return b64url_encode(hashlib.sha256(value.encode("utf-8")).digest())
