"""Running modules: discovery once per metadata document, every applicable module of every
selected variant on a thread pool (modules do not interfere: each has its own pushed requests,
keys and browser, so a waiting module overlaps the others), results in the suite's order."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from corridor.check.browser import Browser
from corridor.check.config import CheckConfig, ConfigError, Variant
from corridor.check.http import RecordingClient, Transcript, ssl_context
from corridor.check.login.errors import LoginError
from corridor.check.module import MODULES, Context, ModuleFailed, ModuleSkipped, ModuleSpec
from corridor.check.results import Exchange, ModuleResult, Status, VariantReport
from corridor.check.session import Server


class DiscoveryError(Exception):
    """The metadata cannot be had or is not this issuer's: nothing can run."""


def metadata_url(issuer: str, openid: bool) -> str:
    """OIDC Discovery 4 (issuer + /.well-known/openid-configuration) or RFC 8414 3 (the
    well-known segment inserted before the issuer's path)."""
    if openid:
        return issuer.rstrip("/") + "/.well-known/openid-configuration"
    parts = urlsplit(issuer)
    path = "/.well-known/oauth-authorization-server" + (parts.path.rstrip("/") if parts.path != "/" else "")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def discover(config: CheckConfig, openid: bool, transcript: Transcript) -> Server:
    url = metadata_url(config.issuer, openid)
    client = RecordingClient(transcript, config.allowed_hosts(), ssl_context(config.ca_file))
    transcript.step = "discovery"
    try:
        response = client.get(url)
        if response.status_code != 200:
            raise DiscoveryError(f"{url} answered HTTP {response.status_code}")
        try:
            metadata = json.loads(response.content)
        except ValueError as exc:
            raise DiscoveryError(f"{url} is not JSON") from exc
        if not isinstance(metadata, dict):
            raise DiscoveryError(f"{url} is not a JSON object")
        if metadata.get("issuer") != config.issuer:
            # FAPI2 5.3.3.1-11: the configured issuer must equal the metadata's, exactly.
            raise DiscoveryError(f"{url} names issuer {metadata.get('issuer')!r}, not {config.issuer!r}")
        jwks_uri = metadata.get("jwks_uri")
        jwks: dict[str, object] = {"keys": []}
        if isinstance(jwks_uri, str):
            keys = client.get(jwks_uri)
            try:
                parsed = json.loads(keys.content) if keys.status_code == 200 else {}
            except ValueError:
                parsed = {}
            jwks = parsed if isinstance(parsed, dict) else {"keys": []}
        return Server(config.issuer, metadata, url, hashlib.sha256(response.content).hexdigest(), jwks)
    except httpx.HTTPError as exc:
        raise DiscoveryError(f"{url}: {exc}") from exc
    finally:
        client.close()


def order_key(spec: ModuleSpec) -> int:
    from corridor.check.modules import ORDER

    try:
        return ORDER.index(spec.name)
    except ValueError:
        return len(ORDER)


def modules_for(variant: Variant, only: Sequence[str] = ()) -> list[ModuleSpec]:
    """The modules of a variant (suite order); ``only`` picks by name."""
    import corridor.check.modules  # noqa: F401  (registers them)

    selected = [spec for spec in MODULES if spec.profile == variant.profile and spec.applies(variant)]
    if only:
        unknown = [name for name in only if not any(spec.name == name for spec in MODULES)]
        if unknown:
            raise ConfigError(f"unknown module {unknown[0]!r} (see --list)")
        selected = [spec for spec in selected if spec.name in only]
    return sorted(selected, key=order_key)


@dataclass
class Job:
    variant: Variant
    spec: ModuleSpec
    server: Server


def run_module(
    job: Job,
    config: CheckConfig,
    new_browser: Callable[[Transcript], Browser],
    *,
    slow: bool,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    gate: threading.Semaphore | None = None,
) -> ModuleResult:
    """Run one module; with ``gate``, it holds a slot while it talks to the server and gives
    it back while it waits for a lifetime (so the waits of ``--slow`` modules overlap)."""
    if gate is not None:
        waiting = sleep

        def sleep(seconds: float) -> None:
            gate.release()
            try:
                waiting(seconds)
            finally:
                gate.acquire()

        with gate:
            return run_module(job, config, new_browser, slow=slow, sleep=sleep, clock=clock)
    spec = job.spec
    transcript = Transcript()
    started = time.monotonic()
    ctx = Context(
        config, job.variant, job.server, transcript, new_browser, slow=slow, sleep=sleep, clock=clock
    )
    status, reason = Status.PASS, ""
    if spec.slow and not slow:
        status, reason = Status.SKIPPED, "waits for a lifetime to pass: run with --slow"
    else:
        try:
            spec.run(ctx)
        except ModuleFailed as exc:
            status, reason = Status.FAIL, str(exc)
        except ModuleSkipped as exc:
            status, reason = Status.SKIPPED, str(exc)
        except ConfigError as exc:
            status, reason = Status.SKIPPED, str(exc)
        except LoginError as exc:
            status, reason = Status.FAIL, f"the user's part failed at step {transcript.step!r}: {exc}"[:300]
        except httpx.HTTPError as exc:
            status, reason = Status.FAIL, f"transport error at step {transcript.step!r}: {exc}"[:300]
        except Exception as exc:
            status, reason = (
                Status.FAIL,
                f"the checker failed at step {transcript.step!r}: {type(exc).__name__}: {exc}"[:300],
            )
            ctx.note("checker traceback: " + traceback.format_exc(limit=6).replace("\n", " | ")[:1500])
        finally:
            ctx.close()
        if status is Status.PASS:
            if ctx.warnings:
                status, reason = Status.WARNING, ctx.warnings[0]
            else:
                reason = spec.summary.split(". ")[0].split(" (")[0].rstrip(".") + ": as required"
    notes = [*ctx.warnings[1:], *ctx.notes] if status is Status.WARNING else [*ctx.warnings, *ctx.notes]
    for party in ctx._parties.values():
        if party.nonce_challenges:
            ctx.facts.setdefault("dpop_nonce_challenges", sorted(set(party.nonce_challenges)))
    return ModuleResult(
        name=spec.name,
        status=status,
        reason=reason,
        clause=spec.clause,
        summary=spec.summary,
        notes=notes,
        transcript=transcript.exchanges,
        facts=dict(ctx.facts),
        seconds=time.monotonic() - started,
    )


def run(
    config: CheckConfig,
    variants: Sequence[Variant],
    new_browser: Callable[[Transcript], Browser],
    *,
    only: Sequence[str] = (),
    slow: bool = False,
    workers: int = 6,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    on_result: Callable[[Variant, ModuleResult], None] | None = None,
) -> tuple[list[VariantReport], dict[bool, Server], list[Exchange]]:
    """Run the selected variants; results per variant in suite order, and the discovery
    transcript."""
    transcript = Transcript()
    servers: dict[bool, Server] = {}
    for openid in sorted({v.openid for v in variants}, reverse=True):
        servers[openid] = discover(config, openid, transcript)
    reports = [
        VariantReport(
            v.name,
            v.client_auth,
            v.sender,
            v.openid,
            request_method=v.request_method,
            response_mode=v.response_mode,
            profile=v.profile,
        )
        for v in variants
    ]
    jobs: list[tuple[int, Job]] = []
    for index, variant in enumerate(variants):
        for spec in modules_for(variant, only):
            jobs.append((index, Job(variant, spec, servers[variant.openid])))
    # Slow modules first; each waiting module gives its slot back, so ``workers`` modules talk to
    # the server at a time while every wait overlaps the rest.
    schedule = sorted(range(len(jobs)), key=lambda position: not (jobs[position][1].spec.slow and slow))
    waiting = sum(1 for _, job in jobs if job.spec.slow and slow)
    gate = threading.Semaphore(max(1, workers))
    results: dict[int, ModuleResult] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, workers) + waiting, thread_name_prefix="check")
    try:
        futures = {
            pool.submit(
                run_module,
                jobs[position][1],
                config,
                new_browser,
                slow=slow,
                sleep=sleep,
                clock=clock,
                gate=gate,
            ): position
            for position in schedule
        }
        for future in as_completed(futures):
            position = futures[future]
            results[position] = future.result()
            if on_result is not None:
                on_result(jobs[position][1].variant, results[position])
    except BaseException:
        # Ctrl-C: modules not started are dropped; the caller exits without waiting for the rest.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    for position, (index, _) in enumerate(jobs):
        reports[index].results.append(results[position])
    return reports, servers, transcript.exchanges
