"""The one append path for evidence records, each appended to its writer's hash chain
(audit/chain.py, issue 8) through an evidence sink (audit/sinks.py: SQL, JSON Lines, memory).

A record says what was decided (event, outcome, the rule when refused) and about
what: client, user, issuer, redirect URI, scope, authorization details, resource,
sender constraint (method and key thumbprint), grant, token and request ids.

Refusals of unauthenticated requests (no client, no token yet) are sampled (issue 13 B4,
design.md 5c): per source and kind, the first few of each window are recorded one by one and
the rest counted into one aggregate record (:class:`RefusalSampler`), so garbage does not cost
one stored record each. Decisions about authenticated clients are always recorded one by one.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from corridor.audit.events import Outcome
from corridor.audit.sinks import EvidenceSink
from corridor.core.randomness import new_id
from corridor.core.request_context import note_client, note_refusal
from corridor.core.text import escaping_logger
from corridor.store.protocols import UnitOfWork

log = escaping_logger("corridor.audit")  # issue 13 E1


@dataclass
class Evidence:
    """What a decision was about; filled in as a request passes its checks."""

    issuer: str
    request_id: str
    client_id: str | None = None
    user_id: str | None = None
    redirect_uri: str | None = None
    scope: str | None = None
    authorization_details: Any = None
    resource: Any = None
    sender_constraint: str | None = None
    key_thumbprint: str | None = None
    grant_id: str | None = None
    token_jti: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


#: The structured members' stored form: what ``json.dumps(value, separators=(",", ":"),
#: sort_keys=True)`` writes (it builds this encoder on every call; one is made once here).
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def _json(value: Any) -> str | None:
    return None if value is None else _ENCODER.encode(value)


def writer_id(role: str) -> str:
    """A chain per process: role, host, process id and a random part (a restarted process starts
    a new chain rather than continuing one it cannot prove it wrote)."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def source_key(address: str | None) -> str:
    """The source an unauthenticated request is counted against: its IPv4 address, or the /64 of
    an IPv6 address (one host usually has a whole /64, so its addresses count as one)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


#: The key every source beyond the tracked ones is counted under.
OTHER_SOURCES = "other"


@dataclass
class _Tally:
    recorded: int = 0
    suppressed: int = 0
    rule: str | None = None
    issuer: str | None = None


@dataclass(frozen=True)
class Aggregate:
    """The unauthenticated refusals of one source and kind in a closed window, not recorded singly."""

    source: str
    event: str
    error: str | None
    rule: str | None
    issuer: str | None
    count: int
    start: float
    end: float


class RefusalSampler:
    """issue 13 B4: per window (aligned to multiples of ``window`` seconds), per source and kind
    (event, error), the first ``per_source`` unauthenticated refusals are recorded one by one; the
    rest are counted, and one aggregate record per source and kind says how many when the window
    has closed. At most ``sources`` keys are tracked per window; refusals under any further key
    are counted under the source ``other``. Worst case per window and writer:
    ``sources * (per_source + 1) + kinds`` records whatever the flood; per source and kind
    ``per_source + 1``. The counts live in the process (lost if it dies before the window closes)."""

    def __init__(self, per_source: int = 3, window: float = 60.0, sources: int = 64) -> None:
        self.per_source, self.window, self.sources = per_source, window, sources
        self._lock = threading.Lock()
        self._start: float | None = None
        self._tallies: dict[tuple[str, str, str | None], _Tally] = {}

    def _window(self, now: float) -> float:
        return math.floor(now / self.window) * self.window

    def admit(
        self, source: str, event: str, error: str | None, rule: str | None, issuer: str, now: float
    ) -> tuple[bool, list[Aggregate]]:
        """Whether to record this refusal one by one, and the aggregates of a window that closed."""
        with self._lock:
            closed = self._close(now)
            key = (source, event, error)
            tally = self._tallies.get(key)
            if tally is None:
                if len(self._tallies) >= self.sources:
                    key = (OTHER_SOURCES, event, error)
                    tally = self._tallies.setdefault(key, _Tally(recorded=self.per_source))
                else:
                    tally = self._tallies.setdefault(key, _Tally())
            if tally.recorded < self.per_source:
                tally.recorded += 1
                return True, closed
            tally.suppressed += 1
            tally.rule, tally.issuer = tally.rule or rule, tally.issuer or issuer
            return False, closed

    def flush(self, now: float) -> list[Aggregate]:
        """The aggregates of a window that has closed by ``now`` (the periodic job calls this)."""
        with self._lock:
            return self._close(now)

    def _close(self, now: float) -> list[Aggregate]:
        start = self._window(now)
        if self._start is not None and start <= self._start:
            return []  # the same window (or a request that began just before the current one did)
        previous, tallies = self._start, self._tallies
        self._start, self._tallies = start, {}
        if previous is None:
            return []
        return [
            Aggregate(
                source,
                event,
                error,
                tally.rule,
                tally.issuer,
                tally.suppressed,
                previous,
                previous + self.window,
            )
            for (source, event, error), tally in tallies.items()
            if tally.suppressed
        ]


class EveryRefusal(RefusalSampler):
    """No sampling: every refusal recorded one by one, for a sink that bounds itself (a resource
    server's in-memory trail keeps its last records only)."""

    def admit(
        self, source: str, event: str, error: str | None, rule: str | None, issuer: str, now: float
    ) -> tuple[bool, list[Aggregate]]:
        return True, []


#: Told of every append (event, outcome, rule, records written), e.g. the AS's metrics
#: (server/metrics.py): refusals are counted here, before sampling, as every refusal passes here.
AppendObserver = Callable[[str, str, "str | None", int], None]


class AuditLog:
    """Appends evidence records to ``sink``, hash-chained in this writer's chain; never writes secrets."""

    def __init__(
        self,
        sink: EvidenceSink,
        role: str = "as",
        sampler: RefusalSampler | None = None,
        observer: AppendObserver | None = None,
    ) -> None:
        self.sink = sink
        self.writer = writer_id(role)
        self.sampler = sampler or RefusalSampler()
        self.observer = observer

    @staticmethod
    def row(
        evidence: Evidence,
        event: str,
        outcome: str,
        now: float,
        rule: str | None = None,
        error: str | None = None,
    ) -> Mapping[str, Any]:
        row = {"time": now, "event": event, "outcome": outcome, "rule": rule or None, "error": error}
        row.update(vars(evidence))  # a shallow copy: the structured members are serialised here
        row["authorization_details"] = _json(evidence.authorization_details)
        row["resource"] = _json(evidence.resource)
        row["detail"] = _json(evidence.detail or None)
        return row

    def append(
        self,
        evidence: Evidence,
        event: str,
        outcome: str,
        now: float,
        *,
        rule: str | None = None,
        error: str | None = None,
        conn: UnitOfWork | None = None,
        unauthenticated_source: str | None = None,
    ) -> None:
        """Append one record, inside ``conn``'s transaction when given (so the record
        commits or rolls back with the decision it describes).

        ``unauthenticated_source``: the request's source address, given for a refusal of a request
        that authenticated no client or token; such refusals are sampled (:class:`RefusalSampler`)."""
        admitted, records = True, []
        if unauthenticated_source is not None:
            source = source_key(unauthenticated_source)
            admitted, closed = self.sampler.admit(source, event, error, rule, evidence.issuer, now)
            records = [self._aggregate_row(aggregate) for aggregate in closed]
        if admitted:
            records.append(self.row(evidence, event, outcome, now, rule, error))
        if records:
            self._write(records, conn)
        # The request's log line names its client and the rule it was refused with (issue 18).
        if outcome == Outcome.REFUSED:
            note_refusal(rule, error, evidence.client_id)
        else:
            note_client(evidence.client_id)
        if self.observer is not None:
            self.observer(event, outcome, rule, len(records))
        if admitted:
            log.info(
                "%s %s client=%s rule=%s request=%s",
                event,
                outcome,
                evidence.client_id,
                rule,
                evidence.request_id,
            )

    def flush(self, now: float) -> int:
        """Write the aggregate records of a closed window (the periodic job and shutdown call it)."""
        aggregates = self.sampler.flush(now)
        if aggregates:
            self._write([self._aggregate_row(a) for a in aggregates], None)
            if self.observer is not None:
                self.observer("audit.aggregate", Outcome.AGGREGATED, None, len(aggregates))
        return len(aggregates)

    def _aggregate_row(self, aggregate: Aggregate) -> Mapping[str, Any]:
        evidence = Evidence(
            issuer=aggregate.issuer or "",
            request_id=new_id(),
            detail={
                "aggregate": {
                    "source": aggregate.source,
                    "count": aggregate.count,
                    "from": aggregate.start,
                    "until": aggregate.end,
                }
            },
        )
        return self.row(
            evidence, aggregate.event, Outcome.AGGREGATED, aggregate.end, aggregate.rule, aggregate.error
        )

    def _write(self, records: list[Mapping[str, Any]], conn: UnitOfWork | None) -> None:
        self.sink.append(self.writer, records, conn)
