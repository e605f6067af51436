"""Prometheus metrics of one authorization server (issue 18), served on their own listener.

Each :class:`~corridor.server.authority.AuthorizationServer` has its own ``CollectorRegistry``
(never prometheus-client's global one), so several servers in one process (the tests) do not
collide. With ``corridor serve --workers N`` every worker is a whole AS with its own registry,
served on ``metrics_port + i`` for worker ``i`` (per-process metrics; scrape every port, or sum
them in a query). docs/observability.md lists them.

Labels are bounded: a route's path template (never the raw path), a status code, an OAuth error
code, a rule of ``core.rules.Rule``, an event of ``audit.events.Event``, a grant type and a sender
constraint. Never a client, user or token. Updating one costs a dictionary look-up and
prometheus-client's own per-value lock; nothing here reads the database.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: The label of a request that matched no route (a 404): one value, whatever the path.
UNMATCHED = "unmatched"
#: OAuth error codes are ours (core/errors.py); anything else is shown as this one value.
_ERROR_CODE = re.compile(r"[a-z_]{1,40}")
#: Seconds; the requests of an AS take milliseconds, a password check a few hundred.
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: At most this many label sets kept by :meth:`Metrics.request` (an error code outside
#: ``_ERROR_CODE`` is one label, "other", but each distinct one would be a key here).
_MAX_CHILDREN = 4096

__all__ = ["CONTENT_TYPE_LATEST", "UNMATCHED", "Metrics"]


class Metrics:
    """The counters, histograms and gauges of one AS, in their own registry."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "corridor_http_requests",
            "HTTP requests answered, by route, status and OAuth error code ('' when none).",
            ["endpoint", "status", "error"],
            registry=r,
        )
        self.latency = Histogram(
            "corridor_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.refusals = Counter(
            "corridor_refusals",
            "Refusals recorded in the audit trail (sampled or not), by event and the rule that decided.",
            ["event", "rule"],
            registry=r,
        )
        self.sign_ins = Counter(
            "corridor_sign_in_attempts",
            "Sign-in attempts by factor (password, totp) and result (success, failure, throttled, busy).",
            ["factor", "result"],
            registry=r,
        )
        self.database_errors = Counter(
            "corridor_database_errors",
            "Database unavailable (a refused connection, a dropped one, a full pool), by where "
            "it was met: request, readiness, or a periodic job's name.",
            ["where"],
            registry=r,
        )
        self.unavailable = Counter(
            "corridor_database_unavailable_responses",
            "Requests answered 503 temporarily_unavailable because the database was unavailable.",
            registry=r,
        )
        self.audit_records = Counter(
            "corridor_audit_records_written",
            "Evidence records appended to this process's audit chain (aggregates included).",
            registry=r,
        )
        self.checkpoint_time = Gauge(
            "corridor_audit_last_checkpoint_timestamp_seconds",
            "When this process's checkpoint job last succeeded (it signs the chain heads, or finds "
            "them covered already); 0: not yet.",
            registry=r,
        )
        self._checkpointed_at = clock()  # the process start, until its first checkpoint
        checkpoint_age = Gauge(
            "corridor_audit_checkpoint_age_seconds",
            "Seconds since this process's checkpoint job last succeeded (or it started).",
            registry=r,
        )
        checkpoint_age.set_function(lambda: clock() - self._checkpointed_at)
        self.tokens = Counter(
            "corridor_tokens_issued",
            "Access tokens issued, by grant type and sender constraint (dpop, mtls).",
            ["grant_type", "sender_constraint"],
            registry=r,
        )
        self._request_children: dict[tuple[str, int, str | None], tuple[Counter, Histogram]] = {}
        self.not_ready = Counter(
            "corridor_readiness_failures",
            "Readiness probes answered 503, by reason (database, keys, starting).",
            ["reason"],
            registry=r,
        )

    # -- what the server calls -------------------------------------------------------------

    def request(self, endpoint: str, status: int, error: str | None, seconds: float) -> None:
        """One answered request. The labelled children are kept by their labels (issue 19:
        ``labels()`` costs a validation and a lock per call, about 3x the update itself); the
        labels are bounded, so is this dictionary."""
        key = (endpoint, status, error)
        children = self._request_children.get(key)
        if children is None:
            code = (error if _ERROR_CODE.fullmatch(error) else "other") if error else ""
            children = (self.requests.labels(endpoint, str(status), code), self.latency.labels(endpoint))
            if len(self._request_children) < _MAX_CHILDREN:
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def audit_appended(self, event: str, outcome: str, rule: str | None, written: int) -> None:
        """The audit log's observer (audit/log.py): every refusal, and the records written."""
        if outcome == "refused":
            self.refusals.labels(event, rule or "").inc()
        if written:
            self.audit_records.inc(written)

    def sign_in(self, factor: str, result: str) -> None:
        self.sign_ins.labels(factor, result).inc()

    def token_issued(self, grant_type: str, cnf: dict[str, str]) -> None:
        constraint = "dpop" if "jkt" in cnf else "mtls" if "x5t#S256" in cnf else "none"
        self.tokens.labels(grant_type, constraint).inc()

    def checkpointed(self, now: float) -> None:
        self._checkpointed_at = now
        self.checkpoint_time.set(now)

    def exposition(self) -> bytes:
        """The text format a Prometheus scrape reads."""
        return generate_latest(self.registry)
