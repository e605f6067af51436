"""``corridor check --plan client-credentials`` (issue 20, 1): the suite's
fapi2-security-profile-final-client-credentials-grant-test-plan, through the full runner against
an in-process Corridor over TLS with client credentials clients for every variant: every module
PASSes on the unbroken server, and FAILs for a deliberate fault (a client not registered for the
grant, a bearer token issued without a DPoP proof)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from corridor.check import runner
from corridor.check.config import (
    CheckConfig,
    ConfigError,
    Variant,
    all_variants_of,
    parse_config,
    select_variants,
)
from corridor.check.login import make_browser
from corridor.check.results import ModuleResult, Status
from corridor.cli import main
from corridor.core.jose import SigningKey
from corridor.server import token as token_endpoint
from corridor.server.authority import Exchange
from corridor.server.checks import dpop as dpop_checks
from corridor.transport.tls import DevTLS
from tests.check.corridor_stack import write_config
from tests.pki import TestPKI
from tests.support import PASSWORD, Driver, RunningAS, running_as

P = "fapi2-security-profile-final-"
SCOPE = "accounts payments"
PAIRS = ("private_key_jwt+dpop", "private_key_jwt+mtls", "mtls+dpop", "mtls+mtls")
MODULES = [
    P + "discovery-end-point-verification",
    P + "happy-flow",
    P + "access-token-type-header-case-sensitivity",
    P + "check-dpop-proof-nbf-exp",
    P + "ensure-dpopproof-with-iat-10seconds-before-succeeds",
    P + "ensure-dpopproof-with-iat-10seconds-after-succeeds",
    P + "ensure-holder-of-key-required",
    P + "ensure-signed-client-assertion-with-RS256-fails",
    P + "ensure-client-assertion-in-token-endpoint",
    P + "ensure-client-assertion-with-exp-is-5-minutes-in-past-fails",
    P + "ensure-client-assertion-with-wrong-aud-fails",
    P + "ensure-client-assertion-with-no-sub-fails",
]
DPOP_MODULES = MODULES[3:6]
ASSERTION_MODULES = MODULES[7:]


def expected_modules(variant: Variant) -> list[str]:
    """The plan's modules of a variant: the DPoP ones for DPoP, the assertion ones for private_key_jwt."""
    return [
        name
        for name in MODULES
        if (name not in DPOP_MODULES or variant.sender == "dpop")
        and (name not in ASSERTION_MODULES or variant.client_auth == "private_key_jwt")
    ]


def entries(
    driver: Driver, directory: Path, pki: TestPKI, *, grant_types: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Two clients per variant pair, each with its own key and self-signed certificate."""
    found: list[dict[str, Any]] = []
    for pair in PAIRS:
        auth, sender = pair.split("+")
        for n in (1, 2):
            cert = pki.self_signed(f"CN=cc {auth} {sender} {n} {len(grant_types)}")
            key = SigningKey.generate("PS256" if n == 1 else "ES256")  # RSA: the RS256 module
            jwks = {"keys": [cert.jwk()] if auth == "mtls" else [key.public_jwk, cert.jwk()]}
            code_flow = "authorization_code" in grant_types
            client = driver.add_client(
                scope=SCOPE,
                grant_types=grant_types,
                jwks=jwks,
                key=key,
                auth_method="self_signed_tls_client_auth" if auth == "mtls" else "private_key_jwt",
                sender_constraint=sender,
            )
            jwk_file = directory / f"{client.client_id}.jwk.json"
            jwk_file.write_text(json.dumps(client.key.private_jwk()))
            entry: dict[str, Any] = {
                "client_id": client.client_id,
                "jwk_file": jwk_file.name,
                "cert_file": str(cert.cert_file),
                "cert_key_file": str(cert.key_file),
                "scope": SCOPE,
                "variants": [pair + "+cc"],
            }
            if code_flow:
                entry["redirect_uri"] = client.redirect_uri
            found.append(entry)
    return found


def config_for(
    running: RunningAS, directory: Path, clients: list[dict[str, Any]], username: str
) -> CheckConfig:
    data = {
        "issuer": running.issuer,
        "plan": "client-credentials",
        "ca_file": str(Path(running.tls.ca_file).resolve()),
        "login": {"method": "html-form", "username": username, "password": PASSWORD},
        "clients": clients,
    }
    return parse_config(data, directory)


@pytest.fixture(scope="module")
def corridor(
    tmp_path_factory: pytest.TempPathFactory, tls: DevTLS
) -> Iterator[tuple[RunningAS, CheckConfig, CheckConfig]]:
    """Corridor (SQLite: these tests are about the checker) with client credentials clients for
    every variant, and a second configuration naming code-flow-only clients instead."""
    data_dir = tmp_path_factory.mktemp("cc-as")
    database = f"sqlite:///{data_dir / 'corridor.db'}"
    with running_as(data_dir, tls, database_url=database) as running:
        driver = Driver(running)
        username = driver.add_user()
        pki = TestPKI(data_dir / "pki")
        good = entries(driver, data_dir, pki, grant_types=("client_credentials",))
        code_only = entries(driver, data_dir, pki, grant_types=("authorization_code", "refresh_token"))
        driver.http.close()
        write_config(
            data_dir / "check.toml",
            running.issuer,
            running.tls.ca_file,
            "userinfo",
            username,
            PASSWORD,
            good,
            plan="client-credentials",
        )
        yield (
            running,
            config_for(running, data_dir, good, username),
            config_for(running, data_dir, code_only, username),
        )


def run(
    running: RunningAS, config: CheckConfig, variants: tuple[Variant, ...], only: tuple[str, ...] = ()
) -> list[dict[str, ModuleResult]]:
    reports, _, _ = runner.run(
        config,
        variants,
        lambda transcript: make_browser(
            config.login, transcript=transcript, allowed_hosts=config.allowed_hosts(), ca_file=config.ca_file
        ),
        only=only,
        workers=4,
        sleep=running.clock.advance,
        clock=running.clock.now,
    )
    return [{result.name: result for result in report.results} for report in reports]


def describe(result: ModuleResult) -> str:
    return f"{result.status}: {result.reason} | notes: {result.notes}"


def test_the_plan_has_four_plain_oauth_variants() -> None:
    variants = all_variants_of("client-credentials")
    assert [v.pair for v in variants] == [p + "+cc" for p in PAIRS]
    assert all(v.client_credentials and not v.openid and v.plan == "client-credentials" for v in variants)
    assert variants[0].name == "private_key_jwt + dpop + plain_oauth + fapi_client_credentials_grant"
    # The module lists: the client credentials modules only, in the suite's order.
    for variant in variants:
        assert [s.name for s in runner.modules_for(variant)] == expected_modules(variant), variant.name
    assert len(expected_modules(variants[0])) == 12 and len(expected_modules(variants[3])) == 4
    assert P + "par-ensure-pkce-required" not in [s.name for s in runner.modules_for(variants[0])]


def test_every_module_passes_on_corridor_in_every_variant(
    corridor: tuple[RunningAS, CheckConfig, CheckConfig],
) -> None:
    running, config, _ = corridor
    variants = all_variants_of("client-credentials")
    reports = run(running, config, variants)
    for variant, results in zip(variants, reports, strict=True):
        assert sorted(results) == sorted(expected_modules(variant)), variant.name
        for name, result in results.items():
            if name.endswith("access-token-type-header-case-sensitivity"):
                # No resource configured, and UserInfo needs a user's openid token.
                assert result.status is Status.SKIPPED and "no resource" in result.reason, describe(result)
                continue
            assert result.status is Status.PASS, f"{variant.name} {name}: {describe(result)}"
        happy = results[P + "happy-flow"]
        assert happy.facts["client_credentials"] is True
        tokens = [e for e in happy.transcript if "client credentials" in e.step and e.status == 200]
        assert len(tokens) == 2  # both clients


def test_a_client_not_registered_for_the_grant_fails_the_happy_flow(
    corridor: tuple[RunningAS, CheckConfig, CheckConfig],
) -> None:
    running, _, code_only = corridor
    (results,) = run(running, code_only, all_variants_of("client-credentials")[:1], (P + "happy-flow",))
    result = results[P + "happy-flow"]
    assert result.status is Status.FAIL, describe(result)
    assert "unauthorized_client" in result.reason


def test_a_bearer_token_without_a_proof_fails_the_holder_of_key_module(
    corridor: tuple[RunningAS, CheckConfig, CheckConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault: a token request without a DPoP proof is answered with a token anyway."""
    original = dpop_checks.require_sender_constraint

    def lax(ex: Exchange) -> None:
        if ex.dpop is None and ex.client is not None and ex.client.sender_constraint == "dpop":
            ex.cnf = {"jkt": "A" * 43}  # bound to no key the client holds: a bearer token in effect
            return
        original(ex)

    pipeline = tuple(lax if check is original else check for check in token_endpoint.TOKEN)
    monkeypatch.setattr(token_endpoint, "TOKEN", pipeline)
    running, config, _ = corridor
    (results,) = run(
        running, config, all_variants_of("client-credentials")[:1], (P + "ensure-holder-of-key-required",)
    )
    result = results[P + "ensure-holder-of-key-required"]
    assert result.status is Status.FAIL, describe(result)
    assert "answered with an access token" in result.reason


def test_the_configuration_of_the_plan(tmp_path: Path) -> None:
    key = SigningKey.generate("ES256")
    (tmp_path / "k.json").write_text(json.dumps(key.private_jwk()))
    client = {"jwk_file": "k.json", "scope": SCOPE, "variants": ["private_key_jwt+dpop+cc"]}
    data = {
        "issuer": "https://as.example",
        "plan": "client-credentials",
        "login": {"method": "manual"},
        "clients": [{**client, "client_id": "a"}, {**client, "client_id": "b"}],
    }
    config = parse_config(data, tmp_path)
    assert config.clients[0].redirect_uri == ""  # no redirect URI for a client credentials client
    (variant,) = select_variants(config, all_variants=False, client_auth=None, sender=None, openid=None)
    assert variant.client_credentials and not variant.openid
    assert config.clients_for(variant)[0].client_id == "a"
    with pytest.raises(ConfigError, match="no openid variant"):
        select_variants(config, all_variants=False, client_auth=None, sender=None, openid=True)
    # A code-flow client still needs its redirect URI.
    code = {"jwk_file": "k.json", "scope": SCOPE, "variants": ["private_key_jwt+dpop"]}
    with pytest.raises(ConfigError, match=r"redirect_uri must be an https URL$"):
        parse_config({**data, "clients": [{**code, "client_id": "a"}, {**code, "client_id": "b"}]}, tmp_path)
    lacking = {**client, "client_id": "a", "variants": ["mtls+mtls+cc"]}  # no certificate
    with pytest.raises(ConfigError, match=r"variant mtls\+mtls\+cc needs credentials the client lacks"):
        parse_config({**data, "clients": [lacking, {**client, "client_id": "b"}]}, tmp_path)


def test_the_command_and_its_report(
    corridor: tuple[RunningAS, CheckConfig, CheckConfig], tmp_path: Path
) -> None:
    """`corridor check CONFIG --all-variants` with ``plan = "client-credentials"``: the report names
    the suite's plan and the four variants; every module passed (exit 0)."""
    _, config, _ = corridor
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        main, ["check", str(config.path / "check.toml"), "--all-variants", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["header"]["test_plan"].startswith(
        "fapi2-security-profile-final-client-credentials-grant-test-plan"
    )
    assert [v["profile"] for v in report["variants"]] == ["fapi_client_credentials_grant"] * 4
    listed = CliRunner().invoke(
        main, ["check", str(config.path / "check.toml"), "--plan", "client-credentials", "--list"]
    )
    assert listed.exit_code == 0 and P + "happy-flow" in listed.output and "par-" not in listed.output
    openid = CliRunner().invoke(main, ["check", str(config.path / "check.toml"), "--openid"])
    assert openid.exit_code == 2 and "no openid variant" in openid.output
