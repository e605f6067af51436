"""examples/fapi_flow.py with --authorization-details (issue 18): the details reach the token
response; bad ones are one line, exit 1, before anything is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PASSWORD, Driver

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "fapi_flow.py"
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "100.00"},
    "creditorName": "Merchant A",
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE.parent.parent / "src")}
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_the_example_asks_for_authorization_details(driver: Driver, tmp_path: Path) -> None:
    client = driver.add_client()
    key, password, details = tmp_path / "key.json", tmp_path / "pw", tmp_path / "details.json"
    key.write_text(json.dumps(client.key.private_jwk()))
    password.write_text(PASSWORD + "\n")
    details.write_text(json.dumps([PAYMENT]))
    result = run(
        "--issuer", driver.issuer, "--client-id", client.client_id, "--key", str(key),
        "--ca", str(driver.as_.tls.ca_file), "--redirect-uri", client.redirect_uri,
        "--scope", "openid payments", "--username", driver.add_user(), "--password-file", str(password),
        "--authorization-details", f"@{details}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"creditorName": "Merchant A"' in result.stdout and "userinfo -> 200" in result.stdout


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("{", "--authorization-details: not JSON ("),
        ("[1]", "--authorization-details: must be a non-empty JSON array of objects (RFC 9396 2)"),
        ("@/nonexistent.json", "--authorization-details: cannot read /nonexistent.json"),
    ],
)
def test_bad_authorization_details_are_one_line(value: str, line: str) -> None:
    result = run("--client-id", "c", "--key", "k.json", "--redirect-uri", "https://app.example/cb",
                 "--authorization-details", value)  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(line) and len(result.stderr.splitlines()) == 1, result.stderr
