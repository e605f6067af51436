"""Server-issued DPoP nonces (RFC 9449 8), for the AS and for resource servers, each with its
own secret (RFC 9449 9: the AS and the RS keep separate nonces). Derived rather than stored
(design.md 4): HMAC-SHA256 of a shared secret and a time step, so every instance that shares
the secret agrees without a round trip, and nonces survive restarts."""

from __future__ import annotations

import hashlib
import hmac

from corridor.core.b64 import b64url_encode
from corridor.core.clock import Clock


class DPoPNonces:
    def __init__(self, secret: bytes, step: int, clock: Clock) -> None:
        self._secret = secret
        self.step = step
        self.clock = clock

    def _for_step(self, step: int) -> str:
        # 256-bit HMAC output: unpredictable without the secret (RFC 9449 8, 11.3).
        return b64url_encode(hmac.new(self._secret, str(step).encode(), hashlib.sha256).digest())

    def current(self) -> str:
        return self._for_step(int(self.clock.now() // self.step))

    def is_valid(self, nonce: str) -> bool:
        """Accept the nonce of the current step and of the one before it."""
        step = int(self.clock.now() // self.step)
        given = nonce.encode("utf-8", "replace")
        return any(hmac.compare_digest(given, self._for_step(s).encode()) for s in (step, step - 1))
