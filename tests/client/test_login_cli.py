"""``corridor login`` as a person uses it: it prints the URL, the browser signs in and consents,
the loopback callback receives the response, and the token response is printed redacted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import PASSWORD, Driver, free_socket


def test_login_command(driver: Driver, tmp_path: Path) -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    registered = driver.add_client(redirect_uris=(f"http://127.0.0.1:{port}/callback",))
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(registered.key.private_jwk()))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "corridor.cli",
            "login",
            "--issuer",
            driver.issuer,
            "--client-id",
            registered.client_id,
            "--key",
            str(key_file),
            "--scope",
            "openid profile",
            "--port",
            str(port),
            "--ca",
            str(driver.as_.tls.ca_file),
            "--timeout",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = json.loads(process.stdout.readline())["authorization_url"]
        browser = driver.browser()
        page = browser.get(url)
        page = browser.submit(page, {"username": driver.add_user(), "password": PASSWORD})
        final = browser.submit(page, {"decision": "approve"}, follow=False)
        location = final.headers["location"]
        assert location.startswith(f"http://127.0.0.1:{port}/callback?")
        assert httpx.get(location, timeout=10).status_code == 200  # the browser lands on the loopback page
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    body = json.loads(out)
    assert body["token_type"] == "DPoP"
    assert body["access_token"].endswith("(redacted, --show-tokens to print)")
    assert body["id_token_claims"]["aud"] == registered.client_id
    assert "Traceback" not in err
