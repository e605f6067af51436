"""base64url without padding (RFC 7515 2)."""

from __future__ import annotations

import base64
import re

# One compiled check instead of a per-character scan: this runs for every JWS part we read.
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; raises ValueError on anything else."""
    if not text or len(text) % 4 == 1 or not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
