"""Server signing keys: kept in the database so every instance signs and publishes
the same keys (design.md 5b), parsed once per process."""

from __future__ import annotations

import json
import threading
from typing import Any

from corridor.core.clock import Clock
from corridor.core.jose import SigningKey
from corridor.store.sql import Store


class ServerKeys:
    def __init__(self, store: Store, clock: Clock, alg: str) -> None:
        self.store = store
        self.clock = clock
        self.alg = alg
        self._lock = threading.Lock()
        self._keys: list[tuple[str, SigningKey]] = []

    def ensure(self) -> None:
        """Create the first signing key on first start; load all keys."""
        if not self.store.signing_keys():
            key = SigningKey.generate(self.alg)
            self.store.add_signing_key(key.kid, key.alg, key.private_jwk(), "active", self.clock.now())
        self.reload()

    def reload(self) -> None:
        rows = self.store.signing_keys()
        keys = [(row["state"], SigningKey(json.loads(row["private_jwk"]))) for row in rows]
        with self._lock:
            self._keys = keys

    @property
    def signing(self) -> SigningKey:
        """The newest active key signs."""
        active = [key for state, key in self._keys if state == "active"]
        if not active:
            raise RuntimeError("no active signing key")
        return active[-1]

    def public_jwks(self) -> dict[str, Any]:
        """RFC 7517 5: every published key, unique kids (FAPI2 5.4.2)."""
        return {"keys": [key.public_jwk for state, key in self._keys if state in ("active", "published")]}
