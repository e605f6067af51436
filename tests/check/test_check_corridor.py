"""``corridor check --all-variants`` against Corridor as ``make run`` starts it (dev mode, SQLite,
local TLS, the demo API as the resource and the default token audience): 0 FAIL in all 8
variants, and the command line's front door (``--list``, ``--only``, exit statuses)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.check.corridor_stack import CorridorStack, corridor_for_check
from tests.test_serve import CORRIDOR

VARIANTS = {
    "private_key_jwt + dpop + openid",
    "private_key_jwt + dpop + plain_oauth",
    "private_key_jwt + mtls + openid",
    "private_key_jwt + mtls + plain_oauth",
    "mtls + dpop + openid",
    "mtls + dpop + plain_oauth",
    "mtls + mtls + openid",
    "mtls + mtls + plain_oauth",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorridorStack]:
    with corridor_for_check(tmp_path_factory.mktemp("check-corridor")) as running:
        yield running


def check(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CORRIDOR, "check", *args], capture_output=True, text=True, timeout=timeout)


def test_all_variants_pass_against_corridor(stack: CorridorStack, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = check(str(stack.config_path), "--all-variants", "--json", str(out))
    lines = result.stdout.strip().splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert result.returncode == 0, "\n".join(failed) + result.stderr + stack.logs()[-4000:]
    assert not failed
    assert "Traceback" not in result.stderr
    report = json.loads(out.read_text())
    assert {variant["name"] for variant in report["variants"]} == VARIANTS
    total = sum(len(variant["results"]) for variant in report["variants"])
    counts = report["counts"]
    assert counts["FAIL"] == 0
    assert lines[-1] == (
        f"conformance: {counts['PASS']} passed, 0 failed, {counts['WARNING']} warnings, "
        f"{counts['SKIPPED']} skipped of {total} modules"
    )
    # Skipped: the modules that wait (without --slow), and the claims-parameter module, which the
    # suite skips for a server that does not advertise claims_parameter_supported (Corridor).
    skipped = {
        r["name"] for variant in report["variants"] for r in variant["results"] if r["status"] == "SKIPPED"
    }
    assert skipped == {
        "fapi2-security-profile-final-ensure-token-endpoint-fails-with-expired-auth-code",
        "fapi2-security-profile-final-par-attempt-to-use-expired-request_uri",
        "fapi2-security-profile-final-test-claims-parameter-identity-claims",
    }, skipped
    warnings = [
        (variant["name"], r["name"], r["reason"])
        for variant in report["variants"]
        for r in variant["results"]
        if r["status"] == "WARNING"
    ]
    # The one WARNING (the suite's too): the demo API checks JWT access tokens locally, so the
    # token of a code redeemed twice still works there although Corridor revoked its grant
    # (RFC 6749 4.1.2: SHOULD revoke; introspection would see it, test_token_modules.py).
    assert {(name, module) for name, module, _ in warnings} == {
        (variant, "fapi2-security-profile-final-attempt-reuse-authorization-code-after-one-second")
        for variant in VARIANTS
    }, warnings
    # The opening facts are proven, not read from metadata.
    facts = {row["topic"]: row for row in report["header"]["facts"]}
    for topic in (
        "Sender-constraining methods",
        "PAR mandatory",
        "PKCE S256 enforced",
        "RFC 9207 iss in authorization responses",
        "Client assertion audience",
        "DPoP nonces",
    ):
        assert facts[topic]["verdict"] == "proven", facts[topic]
    assert report["header"]["issuer"] == stack.issuer
    assert len(report["header"]["metadata_sha256"]) == 64


def test_default_variant_and_list(stack: CorridorStack) -> None:
    listed = check(str(stack.config_path), "--list")
    assert listed.returncode == 0, listed.stderr
    names = [line for line in listed.stdout.splitlines() if line and not line.startswith("#")]
    assert listed.stdout.startswith("# private_key_jwt + dpop + openid:")
    assert "fapi2-security-profile-final-happy-flow" in names
    assert "fapi2-security-profile-final-ensure-token-endpoint-fails-with-expired-auth-code (--slow)" in names
    plain = check(
        str(stack.config_path), "--list", "--plain-oauth", "--client-auth", "mtls", "--sender", "mtls"
    )
    plain_names = [line for line in plain.stdout.splitlines() if line and not line.startswith("#")]
    assert len(plain_names) < len(names)
    assert not any("nonce" in name and "dpop" not in name for name in plain_names), plain_names


def test_only_runs_the_named_modules(stack: CorridorStack) -> None:
    result = check(
        str(stack.config_path),
        "--only",
        "fapi2-security-profile-final-happy-flow,fapi2-security-profile-final-discovery-end-point-verification",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("PASS     fapi2-security-profile-final-discovery-end-point-verification")
    assert lines[1].startswith("PASS     fapi2-security-profile-final-happy-flow")
    assert lines[2] == "conformance: 2 passed, 0 failed, 0 warnings, 0 skipped of 2 modules"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("issuer = [", "check.toml"),
        ('issuer = "http://localhost"', "issuer must be an https URL"),
        (
            'issuer = "https://localhost"\n[login]\nmethod = "manual"\n[[clients]]\nclient_id = "a"',
            "at least two [[clients]]",
        ),
    ],
)
def test_configuration_errors_exit_2_with_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "check.toml"
    if content is not None:
        path.write_text(content)
    result = check(str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_module_and_missing_variant_clients_exit_2(stack: CorridorStack, tmp_path: Path) -> None:
    unknown = check(str(stack.config_path), "--only", "no-such-module")
    assert unknown.returncode == 2 and "unknown module 'no-such-module'" in unknown.stderr
    text = stack.config_path.read_text()
    blocks = text.split("[[clients]]")
    kept = [b for b in blocks[1:] if '"private_key_jwt+dpop"' in b]
    # Paths in the file are relative to it: write the copy beside the original.
    only_dpop = stack.config_path.with_name("only-dpop.toml")
    only_dpop.write_text(blocks[0] + "".join("[[clients]]" + b for b in kept))
    result = check(str(only_dpop), "--sender", "mtls")
    assert result.returncode == 2
    assert "needs two [[clients]] registered for private_key_jwt+mtls" in result.stderr


def test_help_names_the_plan_and_the_variants() -> None:
    result = check("--help")
    assert result.returncode == 0
    for text in (
        "fapi2-security-profile-final-test-plan",
        "--all-variants",
        "--slow",
        "--only",
        "Exit status",
    ):
        assert text in result.stdout, text


def test_ctrl_c_stops_at_once_with_one_line(stack: CorridorStack) -> None:
    """A --slow run interrupted while a module waits for the code to expire: exit 130 at once,
    one line, no traceback, no waiting for the 62 s."""
    process = subprocess.Popen(
        [
            *CORRIDOR,
            "check",
            str(stack.config_path),
            "--slow",
            "--only",
            "fapi2-security-profile-final-ensure-token-endpoint-fails-with-expired-auth-code",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # into the flow or the wait (not a lifetime: the point is not to wait it out)
    assert process.poll() is None
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert time.monotonic() - started < 10
    assert process.returncode == 130, out + err
    assert err.strip() == "corridor check: interrupted; no report written", err
    assert "Traceback" not in out + err


def test_the_chromium_login_method_runs_the_flows(stack: CorridorStack) -> None:
    """[login] method = "chromium": real headless Chromium signs in, approves and denies."""
    text = stack.config_path.read_text().replace('method = "html-form"', 'method = "chromium"')
    config = stack.config_path.with_name("chromium.toml")
    config.write_text(text)
    result = check(
        str(config),
        "--only",
        "fapi2-security-profile-final-happy-flow,fapi2-security-profile-final-user-rejects-authentication",
        "--workers",
        "1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "conformance: 2 passed, 0 failed, 0 warnings, 0 skipped of 2 modules"
    )


@pytest.mark.parametrize(("client_auth", "sender"), [("private_key_jwt", "dpop"), ("mtls", "mtls")])
def test_message_signing_plan_passes_against_corridor(
    stack: CorridorStack, tmp_path: Path, client_auth: str, sender: str
) -> None:
    """The Message Signing plan (signed_non_repudiation + jarm) against Corridor's clients
    registered with --require-signed-request-object --response-mode jwt: 0 FAIL in two
    variants (the other six: ``--all-variants`` by hand, for the suite's time)."""
    out = tmp_path / "report.json"
    result = check(
        str(stack.message_signing_config_path),
        "--client-auth",
        client_auth,
        "--sender",
        sender,
        "--json",
        str(out),
    )
    failed = [line for line in result.stdout.strip().splitlines() if line.startswith("FAIL")]
    assert not failed, "\n".join(failed) + result.stderr + stack.logs()[-4000:]
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    (variant,) = report["variants"]
    assert variant["name"] == f"{client_auth} + {sender} + openid + signed_non_repudiation + jarm"
    assert {"FAPI2MS OP JAR", "FAPI2MS OP JARM"} <= set(report["header"]["targets"])
    facts = {row["topic"]: row["verdict"] for row in report["header"]["facts"]}
    for topic in (
        "JAR: signed request objects required at PAR",
        "JAR: request object claims",
        "JAR: request object signature",
        "JARM: signed authorization responses",
    ):
        assert facts[topic] == "proven", (topic, facts)
