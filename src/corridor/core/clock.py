"""One injectable clock (design.md 4): every lifetime and window reads time from here,
so tests move time instead of sleeping."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        return time.time()


class MovableClock:
    """A clock that follows wall time plus an offset that can be moved forward or back.

    Used by tests to run lifetimes and clock windows without sleeping; the shipped
    server always uses ``SystemClock``.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds
