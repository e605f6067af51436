"""base64url without padding (RFC 7515 2)."""

from __future__ import annotations

import base64
import binascii
import re

# One compiled check instead of a per-character scan: this runs for every JWS part we read.
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_TO_STANDARD = str.maketrans("-_", "+/")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#: Unused bits of the last character by length mod 4 (2: four bits, 3: two bits).
_SPARE_BITS = {0: 0, 2: 0b1111, 3: 0b11}


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded, canonical base64url; raises ValueError on anything else.

    Canonical (RFC 4648 3.5): the unused low bits of the last character are zero, so one byte
    string has exactly one encoding and a signature cannot be re-spelled (joserfc agrees)."""
    if not text or len(text) % 4 == 1 or not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    spare = _SPARE_BITS[len(text) % 4]
    if spare and _ALPHABET.index(text[-1]) & spare:
        raise ValueError("not canonical base64url")
    # The alphabet is checked above; binascii directly skips base64's per-call wrappers.
    return binascii.a2b_base64(text.translate(_TO_STANDARD) + "=" * (-len(text) % 4))
