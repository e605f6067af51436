"""Server signing keys: kept in the database so every instance signs and publishes the same keys
(design.md 5b), parsed once per process, rotated without coordination between instances.

Rotation (``corridor keys rotate``) adds a key with an activation time in the future. Its state
follows from the clock alone, so every instance agrees without talking to the others:

* ``pending``: published in the JWKS at once, not signing yet (resource servers that cache the
  JWKS see it before any token uses it; ``key_activation_delay`` should exceed their cache time);
* ``active``: the newest key whose activation time has passed; it signs everything;
* ``retiring``: superseded, still published until every token it signed has expired
  (superseded + the longest token lifetime + clock skew);
* ``retired``: no longer published.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from typing import Any

from corridor.core.clock import Clock
from corridor.core.jose import SigningKey
from corridor.store.sql import Row, Store

PUBLISHED = ("pending", "active", "retiring")


@dataclass(frozen=True)
class KeyState:
    kid: str
    alg: str
    state: str
    created_at: float
    activates_at: float
    #: When a newer key took over (None while it is pending or active).
    superseded_at: float | None
    #: When it leaves the JWKS (None while it is pending or active).
    retires_at: float | None


def key_states(rows: list[Row], now: float, keep: float) -> list[KeyState]:
    """The state of every key at ``now``; ``keep``: how long a superseded key stays published."""
    ordered = sorted(rows, key=lambda r: (_activates(r), r["created_at"], r["kid"]))
    started = [r for r in ordered if _activates(r) <= now] or ordered[:1]
    active = started[-1]["kid"] if started else None
    states = []
    for i, row in enumerate(ordered):
        activates = _activates(row)
        successor = next((_activates(r) for r in ordered[i + 1 :] if _activates(r) <= now), None)
        if row["kid"] == active:
            state, superseded, retires = "active", None, None
        elif activates > now:
            state, superseded, retires = "pending", None, None
        else:
            superseded = successor if successor is not None else activates
            retires = superseded + keep
            state = "retiring" if now < retires else "retired"
        states.append(
            KeyState(row["kid"], row["alg"], state, row["created_at"], activates, superseded, retires)
        )
    return states


def _activates(row: Row) -> float:
    value = row.get("activates_at")
    return float(value if value is not None else row["created_at"])


class ServerKeys:
    def __init__(self, store: Store, clock: Clock, alg: str, keep: float) -> None:
        self.store = store
        self.clock = clock
        self.alg = alg
        #: How long a superseded key stays published: the longest token lifetime plus clock skew.
        self.keep = keep
        self._lock = threading.Lock()
        self._rows: list[Row] = []
        self._parsed: dict[str, SigningKey] = {}
        #: The active key, with the rows and the time span it holds for (see ``signing``).
        self._signing: tuple[list[Row], float, float, SigningKey] | None = None

    def ensure(self) -> None:
        """Create the first signing key on first start (one instance wins); load all keys."""
        if not self.store.keys.signing_keys():
            key = SigningKey.generate(self.alg)
            self.store.keys.add_first_signing_key(key.kid, key.alg, key.private_jwk(), self.clock.now())
        self.reload()

    def rotate(self, activate_in: float, alg: str | None = None) -> KeyState:
        """Add a key that is published now and signs from ``now + activate_in`` on."""
        key = SigningKey.generate(alg or self.alg)
        now = self.clock.now()
        self.store.keys.add_signing_key(
            key.kid, key.alg, key.private_jwk(), "pending", now, now + activate_in
        )
        self.reload()
        return next(k for k in self.states() if k.kid == key.kid)

    def reload(self) -> list[Row]:
        """Re-read the keys (new ones from a rotation elsewhere); each key is parsed once."""
        rows = self.store.keys.signing_keys()
        with self._lock:
            for row in rows:
                if row["kid"] not in self._parsed:
                    self._parsed[row["kid"]] = SigningKey(json.loads(row["private_jwk"]))
            self._rows = rows
        return rows

    @property
    def loaded(self) -> bool:
        """Readiness (issue 18): some key was loaded, so this process can sign."""
        return bool(self._parsed)

    def states(self, rows: list[Row] | None = None) -> list[KeyState]:
        return key_states(self._rows if rows is None else rows, self.clock.now(), self.keep)

    @property
    def signing(self) -> SigningKey:
        """The active key signs (FAPI2 5.4.1 algorithms only; checked when the key is made).

        Which key is active changes only when the clock crosses an activation time, so the
        answer is kept, with the rows it came from, for the span between the latest activation
        at or before now and the next one after it (a clock moved back leaves it too)."""
        now = self.clock.now()
        cached = self._signing
        if cached is not None and cached[0] is self._rows and cached[1] <= now < cached[2]:
            return cached[3]
        rows = self._rows
        for state in key_states(rows, now, self.keep):
            if state.state == "active":
                key = self._parsed[state.kid]
                times = [_activates(row) for row in rows]
                since = max((t for t in times if t <= now), default=-math.inf)
                until = min((t for t in times if t > now), default=math.inf)
                self._signing = (rows, since, until, key)
                return key
        raise RuntimeError("no active signing key")

    def public_jwks(self, fresh: bool = False) -> dict[str, Any]:
        """RFC 7517 5: every published key, unique kids (FAPI2 5.4.2). ``fresh`` re-reads the
        database first, so the JWKS endpoint of every instance shows a rotation at once."""
        rows = self.reload() if fresh else None
        return {"keys": [self._parsed[s.kid].public_jwk for s in self.states(rows) if s.state in PUBLISHED]}
