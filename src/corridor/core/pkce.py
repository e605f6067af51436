"""PKCE (RFC 7636) with S256 only (FAPI2 5.3.2.2-5)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from corridor.core.b64 import b64url_encode

# RFC 7636 4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# An S256 challenge is the base64url SHA-256 of the verifier: exactly 43 characters.
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def new_verifier() -> str:
    return secrets.token_urlsafe(48)


def s256_challenge(verifier: str) -> str:
    return b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())


def is_valid_verifier(verifier: str) -> bool:
    return bool(_VERIFIER.fullmatch(verifier))


def is_valid_s256_challenge(challenge: str) -> bool:
    return bool(_S256_CHALLENGE.fullmatch(challenge))


def verifier_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 4.6, compared in constant time."""
    if not is_valid_verifier(verifier):
        return False
    return hmac.compare_digest(s256_challenge(verifier).encode(), challenge.encode("utf-8", "replace"))
