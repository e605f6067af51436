"""TLS by handshakes (FAPI2 5.2.1, 5.2.2-2, 5.2.3-2; BCP 195 = RFC 9325 + RFC 8996): not a
module of the OIDF plan (the suite's TLS conditions run inside its discovery steps), here one
module so that the report's opening can show each origin's versions and TLS 1.2 suites."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from corridor.check.module import Context, module
from corridor.check.results import Status, VariantReport
from corridor.check.tls import TlsFindings, judge, probe_tls

NAME = "corridor-tls-bcp195"
#: Endpoints a browser calls (5.2.3); every other endpoint is a non-browser one (5.2.2).
BROWSER_ENDPOINTS = ("authorization_endpoint",)
NON_BROWSER_ENDPOINTS = (
    "token_endpoint",
    "pushed_authorization_request_endpoint",
    "jwks_uri",
    "userinfo_endpoint",
    "introspection_endpoint",
    "revocation_endpoint",
)

_cache: dict[tuple[str, int, str], TlsFindings] = {}
_lock = threading.Lock()


def _origin(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    return parts.hostname, parts.port or 443


def origins(ctx: Context) -> dict[tuple[str, int], bool]:
    """Each origin the check talks to, and whether it serves only browser endpoints."""
    meta = ctx.server.metadata
    found: dict[tuple[str, int], bool] = {}

    def add(url: Any, browser: bool) -> None:
        origin = _origin(url) if isinstance(url, str) else None
        if origin is not None:
            found[origin] = found.get(origin, True) and browser

    add(ctx.server.issuer, False)
    for name in BROWSER_ENDPOINTS:
        add(meta.get(name), True)
    for name in NON_BROWSER_ENDPOINTS:
        add(meta.get(name), False)
    aliases = meta.get("mtls_endpoint_aliases")
    if isinstance(aliases, dict):
        for value in aliases.values():
            add(value, False)
    if ctx.config.resource is not None and ctx.config.resource.url != "userinfo":
        add(ctx.config.resource.url, False)
    return found


def probe(host: str, port: int, ca_file: str) -> TlsFindings:
    """One probe per origin per run (every variant sees the same listener)."""
    key = (host, port, ca_file)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    findings = probe_tls(host, port, ca_file=ca_file or None)
    with _lock:
        _cache[key] = findings
    return findings


@module(NAME, "FAPI2-SP-FINAL-5.2.1, 5.2.2-2, 5.2.3-2; RFC 9325, RFC 8996", extra=True)
def tls_bcp195(ctx: Context) -> None:
    """Every origin speaks TLS 1.2 or 1.3 only and, on TLS 1.2, only the suites BCP 195
    recommends (non-browser endpoints) or allows (browser endpoints), by real handshakes
    (FAPI2 5.2.1, 5.2.2-2, 5.2.3-2; RFC 9325, RFC 8996)."""
    ctx.step("TLS handshakes")
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for (host, port), browser in sorted(origins(ctx).items()):
        if (host or "").lower() not in ctx.config.allowed_hosts():
            continue
        findings = probe(host, port, str(ctx.config.ca_file or ""))
        status, reason, notes = judge(findings, browser_endpoint=browser)
        label = f"https://{host}:{port}"
        found = findings.as_dict()
        results.append(
            {
                "origin": label,
                "versions": found.get("versions", {}),
                "tls12_accepted": found.get("tls12_accepted", []),
                "tls12_refused": found.get("tls12_refused", []),
                "verdict": status.value,
                "note": reason,
            }
        )
        ctx.note(f"{label}: {json.dumps(found, default=str)[:4000]}")
        for note in notes:
            ctx.note(f"{label}: {note}")
        if status is Status.FAIL:
            failures.append(f"{label}: {reason}")
        elif status is Status.WARNING:
            ctx.warn(f"{label}: {reason}")
    ctx.fact("tls", results)
    if failures:
        ctx.fail("; ".join(failures))


def tls_opening(variants: Sequence[VariantReport]) -> list[dict[str, Any]]:
    """The TLS table of the report's opening: each origin once."""
    seen: dict[str, dict[str, Any]] = {}
    for variant in variants:
        for result in variant.results:
            for row in result.facts.get("tls", []) if result.name == NAME else []:
                seen.setdefault(str(row.get("origin")), row)
    return list(seen.values())
