"""What a check run produces: module results with their transcripts, grouped per variant, and
the report's opening facts. Plain data; rendered by :mod:`corridor.check.report`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """The suite's outcome vocabulary for a module."""

    PASS = "PASS"
    FAIL = "FAIL"
    WARNING = "WARNING"
    SKIPPED = "SKIPPED"


@dataclass
class Exchange:
    """One HTTP request and its response (or the transport error), secrets already redacted."""

    step: str
    method: str
    url: str
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: str = ""
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    error: str = ""
    #: Seconds since the module started.
    at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "method": self.method,
            "url": self.url,
            "request_headers": self.request_headers,
            "request_body": self.request_body,
            "status": self.status,
            "response_headers": self.response_headers,
            "response_body": self.response_body,
            "error": self.error,
            "at": round(self.at, 3),
        }


@dataclass
class ModuleResult:
    """One module's outcome in one variant."""

    #: The suite's module name (testName), e.g. ``fapi2-security-profile-final-happy-flow``.
    name: str
    status: Status
    #: One line: why it passed, failed, warned or was skipped.
    reason: str
    #: The FAPI 2.0 clause(s) (or RFC sections) the module checks, e.g. ``FAPI2-SP-FINAL-5.3.2.2-7``.
    clause: str
    summary: str = ""
    #: Further findings beside the reason (each one line), e.g. the warnings of a passing module.
    notes: list[str] = field(default_factory=list)
    transcript: list[Exchange] = field(default_factory=list)
    #: Facts proven on the way, for the report's opening (see :mod:`corridor.check.facts`).
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "clause": self.clause,
            "summary": self.summary,
            "notes": list(self.notes),
            "facts": self.facts,
            "seconds": round(self.seconds, 3),
            "transcript": [exchange.as_dict() for exchange in self.transcript],
        }


@dataclass
class VariantReport:
    """All modules of one variant (client authentication x sender constraint x openid, and
    in the Message Signing plan the request method and response mode)."""

    #: e.g. ``private_key_jwt + dpop + openid``.
    name: str
    client_auth: str
    sender: str
    openid: bool
    results: list[ModuleResult] = field(default_factory=list)
    #: The suite's fapi_request_method and fapi_response_mode (Message Signing plan).
    request_method: str = "unsigned"
    response_mode: str = "plain_response"
    #: The suite's fapi_profile: plain_fapi, or fapi_client_credentials_grant (issue 20).
    profile: str = "plain_fapi"

    def counts(self) -> dict[Status, int]:
        counts = {status: 0 for status in Status}
        for result in self.results:
            counts[result.status] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "client_auth": self.client_auth,
            "sender": self.sender,
            "openid": self.openid,
            "request_method": self.request_method,
            "response_mode": self.response_mode,
            "profile": self.profile,
            "counts": {status.value: n for status, n in self.counts().items()},
            "results": [result.as_dict() for result in self.results],
        }


@dataclass
class Report:
    """A whole run: the opening facts (``header``, see :mod:`corridor.check.facts`) and the
    variants in the order they ran."""

    header: dict[str, Any]
    variants: list[VariantReport] = field(default_factory=list)

    def counts(self) -> dict[Status, int]:
        counts = {status: 0 for status in Status}
        for variant in self.variants:
            for status, n in variant.counts().items():
                counts[status] += n
        return counts

    def summary_line(self) -> str:
        """The terminal's last line."""
        c = self.counts()
        total = sum(c.values())
        return (
            f"conformance: {c[Status.PASS]} passed, {c[Status.FAIL]} failed, "
            f"{c[Status.WARNING]} warnings, {c[Status.SKIPPED]} skipped of {total} modules"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "header": self.header,
            "counts": {status.value: n for status, n in self.counts().items()},
            "summary": self.summary_line(),
            "variants": [variant.as_dict() for variant in self.variants],
        }
