"""The sender-constraint modules (modules/sender.py and the resource checks of the happy flow)
PASS against an in-process Corridor AS with a Corridor resource server in front of it, and
FAIL, in the module the suite would fail, when one fault is made: a bearer token issued to a
DPoP client without a proof (holder-of-key), a resource without a DPoP jti replay cache
(dpop-negative-tests, the jti-replay check), a resource that takes the access token from the
query (happy flow, DisallowAccessTokenInQuery), an AS that ignores dpop_jkt (the two
mismatched-dpop-jkt modules)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import corridor.server.par as par_endpoint
import corridor.server.token as token_endpoint
from corridor.check import runner
from corridor.check.browser import Browser
from corridor.check.config import Variant, load_config
from corridor.check.http import Transcript
from corridor.check.login import make_browser
from corridor.check.results import ModuleResult, Status
from corridor.resource.guard import ResourceGuard, ResourceSettings
from corridor.server.authority import Exchange
from corridor.server.checks.dpop import bind_dpop_key, require_sender_constraint
from corridor.transport.tls import DevTLS
from tests.check.corridor_stack import write_config
from tests.check.inprocess import register
from tests.resource.api import RunningRS, running_api
from tests.support import PASSWORD, RunningAS, running_as

API = "https://api.check.example"  # the resource identifier tokens are issued for (aud)
DPOP = Variant("private_key_jwt", "dpop", True)
MTLS = Variant("mtls", "mtls", True)
P = "fapi2-security-profile-final-"
HAPPY = P + "happy-flow"
HOLDER = P + "ensure-holder-of-key-required"
NEGATIVE = P + "dpop-negative-tests"
PAR_JKT = P + "ensure-mismatched-dpop-jkt-fails"
TOKEN_JKT = P + "ensure-token-endpoint-fails-with-mismatched-dpop-jkt"
TOKEN_PROOF_JKT = P + "ensure-token-endpoint-fails-with-mismatched-dpop-proof-jkt"
DPOP_MODULES = [
    HAPPY,
    P + "check-dpop-proof-nbf-exp",
    P + "ensure-dpopproof-with-iat-10seconds-before-succeeds",
    P + "ensure-dpopproof-with-iat-10seconds-after-succeeds",
    PAR_JKT,
    TOKEN_PROOF_JKT,
    TOKEN_JKT,
    P + "ensure-dpopproof-at-par-endpoint-binding-success",
    P + "ensure-dpop-auth-code-binding-success",
    HOLDER,
    NEGATIVE,
]


@dataclass
class Stack:
    running: RunningAS
    rs: RunningRS
    config: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("check-sender")
    (directory / "data").mkdir()
    with running_as(directory / "data", tls, default_resource=API) as running:
        running.store.clients.add_resource_server(API, "Check API", ["accounts"], None, 0.0)

        def settings(url: str) -> ResourceSettings:
            return ResourceSettings(
                resource=API,
                authorization_servers=(running.issuer,),
                public_url=url,
                scopes_supported=("accounts",),
                ca_file=str(tls.ca_file),
            )

        username, clients = register(running, directory, ("private_key_jwt+dpop", "mtls+mtls"))
        with running_api(settings, tls, directory / "certificates.pem", clock=running.clock) as rs:
            config = directory / "check.toml"
            write_config(
                config, running.issuer, tls.ca_file, rs.url + "/accounts", username, PASSWORD, clients
            )
            yield Stack(running, rs, config)


def run(
    stack: Stack, names: Sequence[str], variant: Variant = DPOP, *, config: Path | None = None
) -> dict[str, ModuleResult]:
    loaded = load_config(config or stack.config)

    def new_browser(transcript: Transcript) -> Browser:
        return make_browser(
            loaded.login, transcript=transcript, allowed_hosts=loaded.allowed_hosts(), ca_file=loaded.ca_file
        )

    reports, _, _ = runner.run(
        loaded, [variant], new_browser, only=names, workers=2, clock=stack.running.clock.now
    )
    results = {result.name: result for result in reports[0].results}
    assert set(results) == set(names)
    return results


def reasons(results: Mapping[str, ModuleResult]) -> dict[str, str]:
    return {name: f"{result.status.value}: {result.reason}" for name, result in results.items()}


def test_sender_modules_pass_on_corridor(stack: Stack) -> None:
    results = run(stack, DPOP_MODULES)
    assert all(r.status is Status.PASS for r in results.values()), reasons(results)
    negative = results[NEGATIVE]
    # Every one of the suite's calls is named in a note; the RS256 one runs (the suite's PS256 key).
    for name in ("two-dpop-headers", "alg-rs256", "alg-none", "jti-replay", "key-other", "no-proof-bearer"):
        assert any(note.startswith(f"{name} (") and "refused" in note for note in negative.notes), name
    assert negative.facts["dpop_negative_checks"] == {"run": 32, "failed": 0}
    assert negative.facts["dpop_alg"] == "PS256"
    assert results[HOLDER].facts["holder_of_key_enforced"] is True
    happy = results[HAPPY]
    assert happy.facts["query_token_refused"] is True
    assert any("first client's DPoP key was refused" in note for note in happy.notes)
    # The query call carries the token in the URL (redacted in the transcript) and no Authorization.
    query = [e for e in happy.transcript if e.step == "resource: access token in the query"]
    assert query and "access_token=" in query[0].url and "authorization" not in query[0].request_headers
    facts = results[P + "ensure-dpopproof-with-iat-10seconds-after-succeeds"].facts
    assert facts["dpop_clock_window"] == {"iat_offset_s": 8, "accepted_at": ["PAR", "token", "resource"]}


def test_mtls_sender_holder_of_key_and_happy_flow_pass(stack: Stack) -> None:
    results = run(stack, [HAPPY, HOLDER], MTLS)
    assert all(r.status is Status.PASS for r in results.values()), reasons(results)
    assert any("client certificate was refused" in note for note in results[HAPPY].notes)
    # Without its certificate an mTLS client cannot even authenticate: invalid_client (the suite's
    # ValidateTokenEndpointResponseWithMTLS).
    token_calls = [e for e in results[HOLDER].transcript if "no client certificate" in e.step]
    assert token_calls and token_calls[-1].status in (400, 401)
    assert "invalid_client" in token_calls[-1].response_body


def test_negative_tests_at_userinfo_for_openid_tokens_only(stack: Stack) -> None:
    """``url = "userinfo"``: the AS's userinfo endpoint is the resource, for openid tokens; a plain
    OAuth token has no resource there (OIDC Core 5.3), so the module is SKIPPED, not failed."""
    userinfo = stack.config.with_name("check-userinfo.toml")
    text = stack.config.read_text()
    userinfo.write_text(text.replace(f'url = "{stack.rs.url}/accounts"', 'url = "userinfo"'))
    openid = run(stack, [NEGATIVE], DPOP, config=userinfo)[NEGATIVE]
    assert openid.status is Status.PASS, openid.reason
    assert all("/userinfo" in e.url for e in openid.transcript if e.step.startswith("resource: "))
    plain = run(stack, [NEGATIVE], Variant("private_key_jwt", "dpop", False), config=userinfo)[NEGATIVE]
    assert plain.status is Status.SKIPPED
    assert "userinfo needs an openid token" in plain.reason


def test_bearer_token_for_a_dpop_client_fails_holder_of_key(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAPI2 5.3.2.1-4: a token request of a DPoP client without a proof gets a Bearer token."""

    def bearer_without_proof(ex: Exchange) -> None:
        assert ex.client is not None
        if ex.client.sender_constraint == "dpop" and ex.dpop is None:
            ex.cnf = {"x5t#S256": "bound-to-nothing"}  # token_type Bearer
            return
        require_sender_constraint(ex)

    steps = tuple(bearer_without_proof if s is require_sender_constraint else s for s in token_endpoint.TOKEN)
    monkeypatch.setattr(token_endpoint, "TOKEN", steps)
    results = run(stack, [HOLDER])
    assert results[HOLDER].status is Status.FAIL
    assert "answered with an access token (token_type 'Bearer')" in results[HOLDER].reason


def test_replayed_proof_accepted_at_the_resource_fails_dpop_negative_tests(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 9449 11.1: a resource server without a jti replay cache."""

    class Forgetful:
        def remember_once(self, key: str, expires_at: float, now: float) -> bool:
            return True

    monkeypatch.setattr(stack.rs.guard, "replay", Forgetful())
    result = run(stack, [NEGATIVE])[NEGATIVE]
    assert result.status is Status.FAIL
    assert result.reason.startswith("jti-replay: a second proof with the same jti was accepted (HTTP 200)")
    assert "(+" not in result.reason  # nothing else was wrong
    assert result.facts["dpop_negative_checks"] == {"run": 32, "failed": 1}


def test_token_in_the_query_accepted_fails_the_happy_flow(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAPI2 5.3.4-2: a resource server that reads ?access_token= (RFC 6750 2.3)."""
    original = ResourceGuard.authenticate

    def from_query(
        guard: ResourceGuard,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        certificate: Any,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        if query and query.get("access_token"):
            scheme = "DPoP" if any(k.lower() == "dpop" for k, _ in headers) else "Bearer"
            headers = [*headers, ("authorization", f"{scheme} {query['access_token']}")]
        return original(guard, method, path, headers, certificate, None)

    monkeypatch.setattr(ResourceGuard, "authenticate", from_query)
    result = run(stack, [HAPPY])[HAPPY]
    assert result.status is Status.FAIL
    assert (
        result.reason
        == "the resource accepted the access token in the query (HTTP 200) (FAPI2-SP-FINAL-5.3.4-2)"
    )


def test_mismatched_dpop_jkt_accepted_fails_both_mismatched_jkt_modules(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 9449 10.1: an AS that ignores the dpop_jkt parameter (it binds only a PAR proof's key)."""

    def ignore_dpop_jkt(ex: Exchange) -> None:
        ex.form.pop("dpop_jkt", None)
        bind_dpop_key(ex)

    steps = tuple(ignore_dpop_jkt if s is bind_dpop_key else s for s in par_endpoint.PUSHED_AUTHORIZATION)
    monkeypatch.setattr(par_endpoint, "PUSHED_AUTHORIZATION", steps)
    results = run(stack, [PAR_JKT, TOKEN_JKT, TOKEN_PROOF_JKT])
    assert results[PAR_JKT].status is Status.FAIL
    assert results[PAR_JKT].reason.startswith("PAR accepted the request (HTTP 201)")
    assert results[TOKEN_JKT].status is Status.FAIL
    assert results[TOKEN_JKT].reason == "the token request was accepted (HTTP 200), a refusal was expected"
    # The binding by the PAR proof still works: that module still passes.
    assert results[TOKEN_PROOF_JKT].status is Status.PASS, results[TOKEN_PROOF_JKT].reason
