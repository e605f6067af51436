"""An in-process single-use cache (for a resource server without a database). Several RS
instances share one by using the SQL store instead (``Store.replay``)."""

from __future__ import annotations

import threading
from typing import Protocol


class ReplayCache(Protocol):
    def remember_once(self, key: str, expires_at: float, now: float) -> bool:
        """Record ``key`` until ``expires_at``; False if it is already recorded and live."""
        ...


class MemoryReplayCache:
    """Thread-safe and bounded: expired entries are dropped as the cache grows."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._entries: dict[str, float] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def remember_once(self, key: str, expires_at: float, now: float) -> bool:
        with self._lock:
            live = self._entries.get(key)
            if live is not None and live >= now:
                return False
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v >= now}
                if len(self._entries) >= self.max_entries:
                    return False  # full of live entries: refuse rather than forget (fail closed)
            self._entries[key] = expires_at
            return True
