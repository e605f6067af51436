"""``corridor login`` as a person uses it: it prints the URL, the browser signs in and consents,
the loopback callback receives the response, and the token response is printed redacted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from corridor.cli import main
from tests.support import PASSWORD, Driver, decode_jwt, free_socket

PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "100.00"},
    "creditorName": "Merchant A",
}


def run_login(driver: Driver, tmp_path: Path, *extra: str) -> tuple[int, str, str, str]:
    """``corridor login`` in its own process, the browser part done by the test's browser:
    (exit status, stdout, stderr, the client_id it logged in as)."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    registered = driver.add_client(redirect_uris=(f"http://127.0.0.1:{port}/callback",))
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(registered.key.private_jwk()))
    command = [
        sys.executable, "-m", "corridor.cli", "login", "--issuer", driver.issuer,
        "--client-id", registered.client_id, "--key", str(key_file), "--port", str(port),
        "--ca", str(driver.as_.tls.ca_file), "--timeout", "30", *extra,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = json.loads(process.stdout.readline())["authorization_url"]
        browser = driver.browser()
        page = browser.submit(browser.get(url), {"username": driver.add_user(), "password": PASSWORD})
        final = browser.submit(page, {"decision": "approve"}, follow=False)
        location = final.headers["location"]
        assert location.startswith(f"http://127.0.0.1:{port}/callback?")
        assert httpx.get(location, timeout=10).status_code == 200  # the browser lands on the loopback page
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, out, err, registered.client_id


def test_login_keeps_the_dpop_key_and_a_person_calls_an_api_with_it(driver: Driver, tmp_path: Path) -> None:
    """Issue 18: --save-key writes the DPoP key the token is bound to (0600); --authorization-details
    reaches the token; ``corridor call`` uses both (answering the nonce challenge) at UserInfo."""
    saved = tmp_path / "dpop-key.json"
    details = tmp_path / "details.json"
    details.write_text(json.dumps([PAYMENT]))
    code, out, err, _ = run_login(
        driver,
        tmp_path,
        "--scope", "openid payments", "--authorization-details", f"@{details}",
        "--save-key", str(saved), "--save-tokens", str(tmp_path / "tokens.json"),
    )  # fmt: skip
    assert code == 0, err
    body = json.loads(out)
    assert saved.stat().st_mode & 0o777 == 0o600
    jwk = json.loads(saved.read_text())
    assert "d" in jwk  # the private key
    tokens = tmp_path / "tokens.json"
    assert tokens.stat().st_mode & 0o777 == 0o600 and "redacted" in body["access_token"]
    claims = decode_jwt(json.loads(tokens.read_text())["access_token"])[1]
    assert claims["cnf"]["jkt"] == body["dpop_jkt"]
    assert claims["authorization_details"][0]["creditorName"] == "Merchant A"
    called = CliRunner().invoke(
        main,
        ["call", "--json", driver.url("/userinfo"), "--token-file", str(tokens), "--dpop-key", str(saved),
         "--ca", str(driver.as_.tls.ca_file)],
    )  # fmt: skip
    assert called.exit_code == 0, called.output
    answer = json.loads(called.output)
    assert answer["status"] == 200 and answer["body"]["sub"] == claims["sub"]
    # Another key than the one the token is bound to: refused, one line, exit 1.
    other = tmp_path / "other.json"
    other.write_text(json.dumps(driver.add_client().key.private_jwk()))
    refused = CliRunner().invoke(
        main,
        ["call", "--json", driver.url("/userinfo"), "--token-file", str(tokens), "--dpop-key", str(other),
         "--ca", str(driver.as_.tls.ca_file)],
    )  # fmt: skip
    assert refused.exit_code == 1
    assert refused.output.splitlines()[-1].startswith("Error: 401: DPoP")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "Error: --authorization-details: not JSON ("),
        ('{"type": "payment_initiation"}', "Error: --authorization-details: must be a non-empty JSON array"),
        ("[]", "Error: --authorization-details: must be a non-empty JSON array"),
        ('["x"]', "Error: --authorization-details: must be a non-empty JSON array of objects"),
        (
            "@/nonexistent/details.json",
            "Error: --authorization-details: cannot read /nonexistent/details.json",
        ),
    ],
)
def test_login_refuses_bad_authorization_details(tmp_path: Path, value: str, message: str) -> None:
    key = tmp_path / "key.json"
    key.write_text("{}")
    result = CliRunner().invoke(
        main,
        ["login", "--issuer", "https://as.invalid", "--client-id", "c", "--key", str(key),
         "--authorization-details", value],
    )  # fmt: skip
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1 and result.output.startswith(message), result.output


def test_login_refuses_to_overwrite_a_saved_key(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text("{}")
    result = CliRunner().invoke(
        main,
        [
            "login",
            "--issuer",
            "https://as.invalid",
            "--client-id",
            "c",
            "--key",
            str(key),
            "--save-key",
            str(key),
        ],
    )
    assert result.exit_code == 1
    assert result.output == f"Error: --save-key: {key} exists; name a new file\n"


def test_call_refuses_a_redacted_token(tmp_path: Path) -> None:
    tokens, key = tmp_path / "tokens.json", tmp_path / "key.json"
    tokens.write_text(json.dumps({"access_token": "eyJhbGci…(redacted, --show-tokens to print)"}))
    key.write_text("{}")
    result = CliRunner().invoke(
        main, ["call", "https://api.invalid/", "--token-file", str(tokens), "--dpop-key", str(key)]
    )
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: --token-file: no usable access_token (save it with corridor login"
    )


def test_login_command(driver: Driver, tmp_path: Path) -> None:
    code, out, err, client_id = run_login(driver, tmp_path, "--scope", "openid profile")
    assert code == 0, err
    body = json.loads(out)
    assert body["token_type"] == "DPoP"
    assert body["access_token"].endswith("(redacted, --show-tokens to print)")
    assert body["id_token_claims"]["aud"] == client_id
    assert "Traceback" not in err
