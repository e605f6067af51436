"""``corridor check --plan message-signing`` (the OIDF fapi2-message-signing-final-test-plan with
signed_non_repudiation + jarm) against panva's oidc-provider configured for FAPI 2.0 Message
Signing (tests/check/peer.py, ``message_signing=True``): 0 FAIL in two variants (private_key_jwt
+ DPoP, self-signed mTLS + mTLS; the other six are left to ``--all-variants`` by hand, for the
suite's time), and each planted fault of the provider (its script's FAULTS) caught by the module
that tests it, with FAIL."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corridor.transport.tls import DevTLS
from tests.check.peer import FapiPeer, running_fapi_peer
from tests.test_serve import CORRIDOR

P = "fapi2-security-profile-final-"
PAIRS = ("private_key_jwt+dpop", "mtls+mtls")
#: The signed-only modules (@VariantNotApplicable(FAPI2AuthRequestMethod=unsigned)) that must PASS.
SIGNED_MODULES = {
    P + "ensure-request-object-with-multiple-aud-succeeds",
    P + "ensure-request-object-with-nbf-8-seconds-in-the-future-is-accepted",
    P + "ensure-request-object-without-exp-fails",
    P + "ensure-request-object-without-nbf-fails",
    P + "ensure-expired-request-object-fails",
    P + "ensure-request-object-with-bad-aud-fails",
    P + "ensure-request-object-with-exp-over-60-fails",
    P + "ensure-request-object-with-nbf-over-60-fails",
    P + "ensure-request-object-signature-algorithm-is-not-none",
    P + "ensure-request-object-with-invalid-signature-fails",
    P + "ensure-matching-key-in-authorization-request",
    P + "ensure-unsigned-request-at-par-endpoint-fails",
    P + "par-authorization-request-containing-request_uri",
    "corridor-ensure-request-object-without-aud-fails",
}
#: WARNINGs that are the suite's verdict for this peer too (see test_check_oidc_provider.py).
EXPECTED_WARNINGS = {P + "attempt-reuse-authorization-code-after-one-second"}


def check(config: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = config.with_name(f"report-{abs(hash(args))}.json")
    result = subprocess.run(
        [*CORRIDOR, "check", str(config), "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result, json.loads(out.read_text()) if out.exists() else {}


def results(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (variant,) = report["variants"]
    return {r["name"]: r for r in variant["results"]}


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS) -> Iterator[FapiPeer]:
    with running_fapi_peer(
        tmp_path_factory.mktemp("check-ms-peer"), tls, pairs=PAIRS, message_signing=True
    ) as running:
        yield running


@pytest.mark.parametrize(("client_auth", "sender"), [("private_key_jwt", "dpop"), ("mtls", "mtls")])
def test_message_signing_plan_passes_against_oidc_provider(
    peer: FapiPeer, client_auth: str, sender: str
) -> None:
    # The plan comes from the configuration (plan = "message-signing"); the clients are "...+jar+jarm".
    result, report = check(peer.config_path, "--client-auth", client_auth, "--sender", sender)
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert not failed, "\n".join(failed) + "\n" + peer.diagnostics()[-3000:]
    assert result.returncode == 0, result.stdout + result.stderr
    (variant,) = report["variants"]
    assert variant["name"] == f"{client_auth} + {sender} + openid + signed_non_repudiation + jarm"
    assert (variant["request_method"], variant["response_mode"]) == ("signed_non_repudiation", "jarm")
    by_name = results(report)
    expected = SIGNED_MODULES - ({P + "ensure-request-object-with-nbf-8-seconds-in-the-future-is-accepted"})
    passed = {name for name, r in by_name.items() if r["status"] == "PASS"}
    assert expected <= passed, {n: by_name[n]["reason"] for n in expected - passed}
    # oidc-provider allows 15 s of clock skew: nbf 8 s ahead is accepted.
    assert (
        by_name[P + "ensure-request-object-with-nbf-8-seconds-in-the-future-is-accepted"]["status"] == "PASS"
    )
    warnings = {name for name, r in by_name.items() if r["status"] == "WARNING"}
    assert warnings <= EXPECTED_WARNINGS, {n: by_name[n]["reason"] for n in warnings}
    # The RS256 request object needs a PS256 key: the mTLS clients sign with their ES256 certificate key.
    rs256 = by_name[P + "ensure-signed-request-object-with-RS256-fails"]
    assert rs256["status"] == ("PASS" if client_auth == "private_key_jwt" else "SKIPPED"), rs256
    header = report["header"]
    assert header["test_plan"].startswith("fapi2-message-signing-final-test-plan")
    assert "FAPI2MS OP JAR" in header["targets"] and "FAPI2MS OP JARM" in header["targets"]
    facts = {row["topic"]: row for row in header["facts"]}
    for topic in (
        "JAR: signed request objects required at PAR",
        "JAR: request object claims",
        "JAR: request object signature",
        "JARM: signed authorization responses",
    ):
        assert facts[topic]["verdict"] == "proven", facts[topic]
    assert "ES256" in facts["JARM: signed authorization responses"]["proven"]
    # Every authorization response was a verified JARM response: the happy flow's transcript
    # shows the callback with response= only (and no iss outside it).
    happy = by_name[P + "happy-flow"]
    assert happy["facts"]["jarm_verified"] is True and happy["facts"]["jarm_alg"] == "ES256"


def test_the_message_signing_modules_are_listed_for_the_plan_only(peer: FapiPeer) -> None:
    listed = subprocess.run(
        [*CORRIDOR, "check", str(peer.config_path), "--list"], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    names = {line.split(" ")[0] for line in listed.stdout.splitlines() if line and not line.startswith("#")}
    assert names >= SIGNED_MODULES
    security = subprocess.run(
        [*CORRIDOR, "check", str(peer.config_path), "--list", "--plan", "security-profile"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert security.returncode == 0, security.stderr
    assert not SIGNED_MODULES & {line.split(" ")[0] for line in security.stdout.splitlines()}
    # The security-profile plan needs clients registered for it; these are registered for signing.
    refused = subprocess.run(
        [*CORRIDOR, "check", str(peer.config_path), "--plan", "security-profile"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "needs two [[clients]] registered for private_key_jwt+dpop" in refused.stderr


#: Each planted fault, the module that must catch it, the modules run with it (a control that
#: still passes), and a word of the FAIL's reason.
FAULTS = {
    "unsigned-request-accepted": (
        P + "ensure-unsigned-request-at-par-endpoint-fails",
        P + "happy-flow",
        "issued a code",
    ),
    "expired-request-object-accepted": (
        P + "ensure-expired-request-object-fails",
        P + "happy-flow",
        "issued a code",
    ),
    "jarm-without-iss": (P + "happy-flow", P + "ensure-expired-request-object-fails", "no iss"),
    "jarm-rs256": (P + "happy-flow", P + "ensure-unsigned-request-at-par-endpoint-fails", "RS256"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_planted_fault_is_caught(fault: str, tmp_path: Path, tls: DevTLS) -> None:
    module, control, word = FAULTS[fault]
    with running_fapi_peer(
        tmp_path / "peer", tls, pairs=("private_key_jwt+dpop",), message_signing=True, fault=fault
    ) as faulty:
        result, report = check(faulty.config_path, "--only", f"{module},{control}")
        diagnostics = faulty.diagnostics()[-2000:]
    assert result.returncode == 1, result.stdout + result.stderr + diagnostics
    by_name = results(report)
    assert by_name[module]["status"] == "FAIL", by_name[module]
    assert word in by_name[module]["reason"], by_name[module]["reason"]
    assert by_name[control]["status"] == "PASS", (by_name[control], diagnostics)
