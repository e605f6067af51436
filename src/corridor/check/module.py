"""Modules: one suite module each, a function of a :class:`Context` that raises
:class:`ModuleFailed` (FAIL), :class:`ModuleSkipped` (SKIPPED) or returns (PASS, or WARNING when
it called :meth:`Context.warn`). Registered with :func:`module` in suite order."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from corridor.check import jarm
from corridor.check.browser import Browser
from corridor.check.config import PLAIN_FAPI, CheckConfig, Variant
from corridor.check.http import Transcript
from corridor.check.outcome import FrontChannelResult, Landing
from corridor.check.session import Party, Pushed, Server


class ModuleFailed(Exception):
    """The server did something the module's pass condition forbids."""


class ModuleSkipped(Exception):
    """The module cannot run here (a variant, a missing configuration, ``--slow``)."""


@dataclass(frozen=True)
class ModuleSpec:
    """One module: the suite's name, the clause it checks, the variants it applies to."""

    name: str
    clause: str
    summary: str
    run: Callable[[Context], None]
    applies: Callable[[Variant], bool] = lambda variant: True
    #: Waits for a lifetime to pass; skipped without ``--slow``.
    slow: bool = False
    #: Not a module of the OIDF plan (the report says so).
    extra: bool = False
    #: The suite runs some modules under both profiles, differently: ``fapi_client_credentials_grant``
    #: modules (modules/client_credentials.py) get their tokens by RFC 6749 4.4, the rest by the
    #: code flow; a module runs only in variants of its own profile.
    profile: str = PLAIN_FAPI


MODULES: list[ModuleSpec] = []


def module(
    name: str,
    clause: str,
    *,
    applies: Callable[[Variant], bool] = lambda variant: True,
    slow: bool = False,
    extra: bool = False,
    profile: str = PLAIN_FAPI,
) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register a module; its docstring's first paragraph is its summary."""

    def register(run: Callable[[Context], None]) -> Callable[[Context], None]:
        summary = " ".join((run.__doc__ or "").strip().split("\n\n")[0].split())
        if any(spec.name == name and spec.profile == profile for spec in MODULES):
            raise ValueError(f"module {name} registered twice")
        MODULES.append(ModuleSpec(name, clause, summary, run, applies, slow, extra, profile))
        return run

    return register


# Variant predicates, as the suite's @VariantNotApplicable annotations.
def dpop_only(variant: Variant) -> bool:
    return variant.sender == "dpop"


def mtls_sender_only(variant: Variant) -> bool:
    return variant.sender == "mtls"


def private_key_jwt_only(variant: Variant) -> bool:
    return variant.client_auth == "private_key_jwt"


def openid_only(variant: Variant) -> bool:
    return variant.openid


def signed_only(variant: Variant) -> bool:
    """@VariantNotApplicable(FAPI2AuthRequestMethod=unsigned): the Message Signing modules."""
    return variant.signed


@dataclass
class Context:
    """What a module runs with: the configuration, the variant, the server's metadata, the two
    parties (configured clients), a transcript, and a way to get a browser."""

    config: CheckConfig
    variant: Variant
    server: Server
    transcript: Transcript
    new_browser: Callable[[Transcript], Browser]
    slow: bool = False
    clock: Callable[[], float] = time.time
    #: How a ``--slow`` module waits for a lifetime to pass (tests move a server's clock instead).
    sleep: Callable[[float], None] = time.sleep
    #: The suite's allowPlainErrorResponseForJarm: in a JARM variant a plain error redirect is
    #: accepted (set by the modules whose request object cannot be trusted).
    plain_jarm_error_allowed: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    _parties: dict[int, Party] = field(default_factory=dict)
    _browsers: list[Browser] = field(default_factory=list)

    # -- parties and browsers -------------------------------------------------------------

    def party(self, index: int) -> Party:
        if index not in self._parties:
            client = self.config.clients_for(self.variant)[index]
            self._parties[index] = Party(
                client, self.variant, self.server, self.transcript, self.config, clock=self.clock
            )
        return self._parties[index]

    @property
    def first(self) -> Party:
        return self.party(0)

    @property
    def second(self) -> Party:
        return self.party(1)

    def browser(self) -> Browser:
        browser = self.new_browser(self.transcript)
        self._browsers.append(browser)
        return browser

    def authorize(
        self,
        party: Party,
        pushed: Pushed,
        *,
        approve: bool = True,
        url: str | None = None,
        browser: Browser | None = None,
        redirect_uri: str | None = None,
    ) -> FrontChannelResult:
        """Send a (new) user agent to the authorization endpoint and let the user act."""
        self.step("authorization endpoint")
        agent = browser or self.browser()
        target = redirect_uri or pushed.redirect_uri or party.config.redirect_uri
        result = agent.authorize(url or party.front_channel(pushed), target, approve=approve)
        return self.response(party, result, target)

    def response(self, party: Party, result: FrontChannelResult, redirect_uri: str) -> FrontChannelResult:
        """The authorization response as the modules judge it: in a JARM variant the verified
        JWT's parameters (:mod:`corridor.check.jarm`; a response that is not one FAILs)."""
        if not self.variant.jarm or result.landing not in (Landing.SUCCESS, Landing.ERROR_REDIRECT):
            return result
        try:
            read = jarm.read(
                result,
                redirect_uri=redirect_uri,
                issuer=self.server.issuer,
                client_id=party.client_id,
                jwks=self.server.jwks,
                now=self.clock(),
                allow_plain_error=self.plain_jarm_error_allowed,
            )
        except jarm.JarmProblem as exc:
            raise ModuleFailed(str(exc)) from exc
        if read.plain:
            self.note("a plain (non-JARM) error response, which the suite allows in this module")
            return read.result
        for warning in read.warnings:
            self.warn(warning)
        self.fact("jarm_verified", True)
        self.fact("jarm_alg", read.header.get("alg"))
        return read.result

    def close(self) -> None:
        for party in self._parties.values():
            party.close()
        for browser in self._browsers:
            browser.close()

    # -- outcomes -------------------------------------------------------------------------

    def step(self, name: str) -> None:
        """Name the transcript entries that follow."""
        self.transcript.step = name

    def fail(self, reason: str) -> NoReturn:
        raise ModuleFailed(reason)

    def skip(self, reason: str) -> NoReturn:
        raise ModuleSkipped(reason)

    def require(self, condition: bool, reason: str) -> None:
        if not condition:
            raise ModuleFailed(reason)

    def warn(self, reason: str) -> None:
        """The suite's ConditionResult.WARNING: the module ends WARNING unless it fails."""
        self.warnings.append(reason)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def fact(self, name: str, value: Any) -> None:
        """A finding for the report's opening (see :mod:`corridor.check.facts`)."""
        self.facts[name] = value

    def random(self, length: int) -> str:
        """A random URL-safe string of exactly ``length`` characters."""
        return (secrets.token_urlsafe(length) * 2)[:length]

    def wait(self, seconds: float) -> None:
        """Wait for a lifetime to pass (only ``--slow`` modules do)."""
        self.sleep(seconds)
