"""The token-endpoint, client-assertion and PKCE modules (corridor.check.modules.token) can fail:
each runs, through the full runner, against an in-process Corridor with one deliberate fault
(a monkeypatched check of corridor.server) and must FAIL for that fault; the same modules PASS
against the unbroken server. Slow modules never sleep: the check waits by moving the server's
MovableClock, and its own clock (assertions, proofs) follows that clock."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwk, jws

from corridor.check import runner
from corridor.check.config import CheckConfig, Variant, parse_config
from corridor.check.login import make_browser
from corridor.check.results import ModuleResult, Status
from corridor.core.jose import FAPI_ALGORITHMS, JoseFailure, verify_with_keys
from corridor.core.pkce import verifier_matches
from corridor.core.randomness import token_hash
from corridor.server import par as par_endpoint
from corridor.server import token as token_endpoint
from corridor.server.authority import Exchange
from corridor.server.authorize import AuthorizationPages
from corridor.server.checks import client_auth
from corridor.server.checks.par import require_pkce_s256
from corridor.server.interaction.browser import Refusal
from corridor.server.pages import error_page
from corridor.server.responses import authorization_response
from corridor.store.grants import SqlGrants
from corridor.transport.tls import DevTLS
from tests.pki import TestPKI
from tests.support import PASSWORD, REDIRECT_URI, Driver, RunningAS, running_as

P = "fapi2-security-profile-final-"
VARIANT = Variant("private_key_jwt", "dpop", True)
SCOPE = "openid offline_access accounts"

PLAIN_PKCE = P + "par-plain-pkce-rejected"
VERIFIER_REQUIRED = P + "ensure-pkce-code-verifier-required"
REUSE = P + "attempt-reuse-authorization-code-after-one-second"
BOUND = P + "ensure-authorization-code-is-bound-to-client"
EXPIRED_CODE = P + "ensure-token-endpoint-fails-with-expired-auth-code"
AUD_ARRAY = P + "par-test-array-as-audience-fails"
RS256 = P + "ensure-signed-client-assertion-with-RS256-fails"
EXPIRED_ASSERTION = P + "ensure-client-assertion-with-exp-is-5-minutes-in-past-fails"


@pytest.fixture(scope="module")
def corridor(
    tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, pki: TestPKI
) -> Iterator[tuple[RunningAS, CheckConfig]]:
    """Corridor over TLS (SQLite: these tests are about the checker), a user and two
    private_key_jwt + DPoP clients with PS256 (RSA) keys, and the check's configuration."""
    data_dir = tmp_path_factory.mktemp("as")
    database = f"sqlite:///{data_dir / 'corridor.db'}"
    with running_as(data_dir, tls, mtls_ca_file=str(pki.ca_file), database_url=database) as running:
        driver = Driver(running)
        username = driver.add_user()
        clients: list[dict[str, Any]] = []
        for n, redirect in enumerate((REDIRECT_URI, REDIRECT_URI + "?dummy1=lorem&dummy2=ipsum"), start=1):
            client = driver.add_client(alg="PS256", scope=SCOPE, redirect_uris=(redirect,))
            jwk_file = data_dir / f"client{n}.private.jwk.json"
            jwk_file.write_text(json.dumps(client.key.private_jwk()))
            clients.append(
                {
                    "client_id": client.client_id,
                    "jwk_file": jwk_file.name,
                    "redirect_uri": redirect,
                    "scope": SCOPE,
                    "variants": [VARIANT.pair],
                }
            )
        driver.http.close()
        data = {
            "issuer": running.issuer,
            "ca_file": str(Path(running.tls.ca_file).resolve()),
            "login": {"method": "html-form", "username": username, "password": PASSWORD},
            "clients": clients,
        }
        yield running, parse_config(data, data_dir)


@pytest.fixture
def server(corridor: tuple[RunningAS, CheckConfig]) -> Iterator[RunningAS]:
    """The module's Corridor, its clock put back after each test."""
    running = corridor[0]
    start = running.clock._offset
    yield running
    running.clock.advance(start - running.clock._offset)


@pytest.fixture
def config(corridor: tuple[RunningAS, CheckConfig]) -> CheckConfig:
    return corridor[1]


def run(
    server: RunningAS, config: CheckConfig, names: Sequence[str], *, slow: bool = False
) -> dict[str, ModuleResult]:
    """The full runner on ``names``; waits move the server's clock, the check's clock follows."""
    reports, _, _ = runner.run(
        config,
        [VARIANT],
        lambda transcript: make_browser(
            config.login, transcript=transcript, allowed_hosts=config.allowed_hosts(), ca_file=config.ca_file
        ),
        only=names,
        slow=slow,
        workers=2,
        sleep=server.clock.advance,
        clock=server.clock.now,
    )
    results = {result.name: result for result in reports[0].results}
    assert sorted(results) == sorted(names)
    return results


def run_one(server: RunningAS, config: CheckConfig, name: str, *, slow: bool = False) -> ModuleResult:
    return run(server, config, [name], slow=slow)[name]


def describe(result: ModuleResult) -> str:
    return f"{result.status}: {result.reason} | notes: {result.notes}"


VerifyWithKeys = Callable[..., dict[str, Any]]


def patch_assertion_claims(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[dict[str, Any], Mapping[str, Any]], None]
) -> None:
    """A fault in Corridor's client authentication: the verified assertion's claims are changed
    before its checks (server/checks/client_auth.py reads them from verify_with_keys)."""
    original: VerifyWithKeys = verify_with_keys

    def verify(token: str, header: Mapping[str, Any], keys: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        claims = original(token, header, keys)
        change(claims, header)
        return claims

    monkeypatch.setattr(client_auth, "verify_with_keys", verify)


# -- the unbroken server ---------------------------------------------------------------------------


def test_the_modules_pass_on_corridor(server: RunningAS, config: CheckConfig) -> None:
    """Every module the fault tests use passes on Corridor as it is (so a FAIL below is the
    fault's doing); with an RSA client the RS256 module runs instead of being skipped."""
    names = [PLAIN_PKCE, VERIFIER_REQUIRED, REUSE, BOUND, AUD_ARRAY, RS256, EXPIRED_ASSERTION]
    results = run(server, config, names)
    for result in results.values():
        assert result.status is Status.PASS, f"{result.name}: {describe(result)}"
    assert results[RS256].facts["assertion_rs256_refused"] is True
    assert results[PLAIN_PKCE].facts["pkce_plain_refused_at"] == "PAR endpoint"


def test_expired_code_module_passes_on_corridor(server: RunningAS, config: CheckConfig) -> None:
    """--slow: the 62 s wait is a move of the server's clock; Corridor's 60 s codes are refused."""
    result = run_one(server, config, EXPIRED_CODE, slow=True)
    assert result.status is Status.PASS, describe(result)
    assert result.facts["code_lifetime_enforced"] is True


# -- one fault each -------------------------------------------------------------------------------


def test_plain_pkce_accepted_fails_plain_pkce_module(
    server: RunningAS, config: CheckConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def s256_or_plain(ex: Exchange) -> None:
        if ex.form.get("code_challenge_method") == "plain" and ex.form.get("code_challenge"):
            return
        require_pkce_s256(ex)

    steps = tuple(
        s256_or_plain if step is require_pkce_s256 else step for step in par_endpoint.PUSHED_AUTHORIZATION
    )
    assert steps != par_endpoint.PUSHED_AUTHORIZATION
    monkeypatch.setattr(par_endpoint, "PUSHED_AUTHORIZATION", steps)
    result = run_one(server, config, PLAIN_PKCE)
    assert result.status is Status.FAIL, describe(result)
    assert "issued a code" in result.reason


def test_missing_verifier_accepted_fails_verifier_module(
    server: RunningAS, config: CheckConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = verifier_matches
    monkeypatch.setattr(
        token_endpoint,
        "verifier_matches",
        lambda verifier, challenge: not verifier or original(verifier, challenge),
    )
    result = run_one(server, config, VERIFIER_REQUIRED)
    assert result.status is Status.FAIL, describe(result)
    assert "without a code_verifier" in result.reason


def test_code_redeemable_twice_fails_reuse_module(
    server: RunningAS, config: CheckConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SqlGrants, "consume_code", lambda self, code_hash, now: True)
    result = run_one(server, config, REUSE)
    assert result.status is Status.FAIL, describe(result)
    assert "redeemed again" in result.reason


def test_code_bound_to_no_client_fails_binding_module(
    server: RunningAS, config: CheckConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = token_endpoint.redeem_authorization_code

    def any_client_may_redeem(ex: Exchange) -> Any:
        code = ex.form.get("code")
        row = ex.server.store.grants.code(token_hash(code)) if code else None
        if row is not None and ex.client is not None and row["client_id"] != ex.client.client_id:
            ex.client = ex.server.clients.get(row["client_id"])
        return original(ex)

    monkeypatch.setattr(token_endpoint, "redeem_authorization_code", any_client_may_redeem)
    result = run_one(server, config, BOUND)
    assert result.status is Status.FAIL, describe(result)
    assert "another client redeemed the code" in result.reason


def test_code_living_120_seconds_fails_expired_code_module(
    server: RunningAS, config: CheckConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings caps code_lifetime at 60: the fault is in the expiry check's input instead."""
    original = server.store.grants.code

    def longer_lived(code_hash: str) -> dict[str, Any] | None:
        row = original(code_hash)
        return None if row is None else {**row, "expires_at": row["expires_at"] + 60}

    monkeypatch.setattr(server.store.grants, "code", longer_lived)
    result = run_one(server, config, EXPIRED_CODE, slow=True)
    assert result.status is Status.FAIL, describe(result)
    assert "62 s old was redeemed" in result.reason


def test_array_audience_accepted_fails_array_audience_module(
    server: RunningAS, config: CheckConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def array_is_fine(claims: dict[str, Any], header: Mapping[str, Any]) -> None:
        if isinstance(claims.get("aud"), list) and server.issuer in claims["aud"]:
            claims["aud"] = server.issuer

    patch_assertion_claims(monkeypatch, array_is_fine)
    result = run_one(server, config, AUD_ARRAY)
    assert result.status is Status.FAIL, describe(result)
    assert "aud as an array" in result.reason


def test_rs256_assertion_accepted_fails_rs256_module(
    server: RunningAS, config: CheckConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    original: VerifyWithKeys = verify_with_keys

    def rs256_too(token: str, header: Mapping[str, Any], keys: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if header.get("alg") != "RS256":
            return original(token, header, keys)
        for data in keys:
            if data.get("kty") == "RSA" and data.get("kid") == header.get("kid"):
                key = jwk.import_key({k: v for k, v in data.items() if k != "alg"})
                claims = json.loads(jws.deserialize_compact(token, key, algorithms=["RS256"]).payload)
                assert isinstance(claims, dict)
                return claims
        raise JoseFailure("no RSA key")

    monkeypatch.setattr(client_auth, "FAPI_ALGORITHMS", (*FAPI_ALGORITHMS, "RS256"))
    monkeypatch.setattr(client_auth, "verify_with_keys", rs256_too)
    result = run_one(server, config, RS256)
    assert result.status is Status.FAIL, describe(result)
    assert "RS256 was accepted" in result.reason


def test_expired_assertion_accepted_fails_expired_assertion_module(
    server: RunningAS, config: CheckConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def expiry_ignored(claims: dict[str, Any], header: Mapping[str, Any]) -> None:
        if isinstance(claims.get("exp"), int) and claims["exp"] <= server.clock.now():
            claims["exp"] = int(server.clock.now()) + 30

    patch_assertion_claims(monkeypatch, expiry_ignored)
    result = run_one(server, config, EXPIRED_ASSERTION)
    assert result.status is Status.FAIL, describe(result)
    assert "expired 5 minutes ago was accepted" in result.reason


# -- a refusal at the authorization endpoint instead of at PAR ----------------------------------


def defer_pkce_refusal(monkeypatch: pytest.MonkeyPatch, refuse: Callable[[Any, dict[str, Any]], Any]) -> None:
    """A server that takes a pushed request without PKCE at PAR and refuses it at the
    authorization endpoint instead (``refuse(pages, pushed parameters)`` makes the refusal)."""
    steps = tuple(step for step in par_endpoint.PUSHED_AUTHORIZATION if step is not require_pkce_s256)
    monkeypatch.setattr(par_endpoint, "PUSHED_AUTHORIZATION", steps)
    original = AuthorizationPages.authorize

    def authorize(pages: AuthorizationPages, query: Any, source: str | None = None) -> Any:
        prefix = "urn:ietf:params:oauth:request_uri:"
        reference = (query.request_uri or "").removeprefix(prefix)
        pushed = pages.server.store.requests.pushed(token_hash(reference)) if reference else None
        if pushed is not None:
            params = json.loads(pushed["parameters"])
            if "code_challenge" not in params:
                raise Refusal(refuse(pages, params))
        return original(pages, query, source)

    monkeypatch.setattr(AuthorizationPages, "authorize", authorize)


def error_redirect(error: str, *, iss: bool = True) -> Callable[[Any, dict[str, Any]], Any]:
    def refuse(pages: AuthorizationPages, params: dict[str, Any]) -> Any:
        answer = {"error": error, "state": params["state"]}
        if iss:
            answer["iss"] = pages.server.settings.issuer
        return authorization_response(params["redirect_uri"], answer)

    return refuse


@pytest.mark.parametrize(
    ("refuse", "where"),
    [
        (error_redirect("invalid_request"), "authorization endpoint (error redirect)"),
        (
            lambda pages, params: error_page("invalid_request", "PKCE is required."),
            "authorization endpoint (error page)",
        ),
    ],
    ids=["error-redirect", "error-page"],
)
def test_pkce_refused_at_the_authorization_endpoint_passes(
    server: RunningAS,
    config: CheckConfig,
    monkeypatch: pytest.MonkeyPatch,
    refuse: Callable[[Any, dict[str, Any]], Any],
    where: str,
) -> None:
    """The suite's PAR-or-authorization-endpoint outcome: a later refusal is as good."""
    defer_pkce_refusal(monkeypatch, refuse)
    result = run_one(server, config, P + "par-ensure-pkce-required")
    assert result.status is Status.PASS, describe(result)
    assert result.facts["pkce_missing_refused_at"] == where


@pytest.mark.parametrize(
    ("refuse", "reason"),
    [
        (error_redirect("access_denied"), "error='access_denied'"),
        (error_redirect("invalid_request", iss=False), "no iss"),
    ],
    ids=["wrong-error", "no-iss"],
)
def test_a_bad_refusal_at_the_authorization_endpoint_fails(
    server: RunningAS,
    config: CheckConfig,
    monkeypatch: pytest.MonkeyPatch,
    refuse: Callable[[Any, dict[str, Any]], Any],
    reason: str,
) -> None:
    defer_pkce_refusal(monkeypatch, refuse)
    result = run_one(server, config, P + "par-ensure-pkce-required")
    assert result.status is Status.FAIL, describe(result)
    assert reason in result.reason
