"""The README's "Try a full flow by hand" recipe against the demo payments API (issue 18):
`corridor login --resource API --authorization-details ... --save-key --save-tokens`, then
`corridor call` with the saved token and key (DPoP proof, the API's nonce answered)."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

from click.testing import CliRunner
from examples.readme import call_api

from corridor.cli import main
from tests.client.test_login_cli import PAYMENT, run_login
from tests.resource.test_demo_api import Demo, demo  # noqa: F401 - the AS and the demo API, this module's own
from tests.support import PASSWORD


def test_login_then_call_the_demo_api_by_hand(demo: Demo, tmp_path: Path) -> None:  # noqa: F811
    key, tokens = tmp_path / "dpop-key.json", tmp_path / "tokens.json"
    code, _, err, _ = run_login(
        demo.driver(),
        tmp_path,
        "--scope", "openid accounts payments", "--resource", demo.api.url,
        "--authorization-details", json.dumps([PAYMENT]),
        "--save-key", str(key), "--save-tokens", str(tokens),
    )  # fmt: skip
    assert code == 0, err
    common = ["--token-file", str(tokens), "--dpop-key", str(key), "--ca", str(demo.api.ca_file)]
    accounts = CliRunner().invoke(main, ["call", "--json", f"{demo.api.url}/accounts", *common])
    assert accounts.exit_code == 0, accounts.output
    assert json.loads(accounts.output)["status"] == 200
    plain = CliRunner().invoke(main, ["call", f"{demo.api.url}/accounts", *common])
    assert plain.exit_code == 0 and plain.output.startswith("200 OK\n{"), plain.output
    bad = CliRunner().invoke(
        main, ["call", f"{demo.api.url}/payments", "--method", "POST", "--data", "{", *common]
    )
    assert bad.exit_code == 1 and bad.output.startswith("Error: --data: not JSON ("), bad.output
    body = json.dumps({"amount": "60.00", "currency": "EUR", "creditorName": "Merchant A"})
    paid = CliRunner().invoke(
        main, ["call", f"{demo.api.url}/payments", "--method", "POST", "--data", body, "--json", *common]
    )
    assert paid.exit_code == 0, paid.output
    assert json.loads(paid.output)["status"] == 201
    # The grant's 100.00 EUR is cumulative: a second 60.00 is refused, one line, exit 1.
    again = CliRunner().invoke(
        main, ["call", f"{demo.api.url}/payments", "--method", "POST", "--data", body, "--json", *common]
    )
    assert again.exit_code == 1
    assert again.output.splitlines()[-1].startswith('Error: 403: DPoP error="insufficient_scope"'), (
        again.output
    )


def test_the_readme_client_snippet_reads_the_demo_api(demo: Demo) -> None:  # noqa: F811
    """examples/readme/call_api.py as the README shows it, against the AS and the demo API."""
    driver = demo.driver()
    registered = driver.add_client(redirect_uris=("https://app.example/cb",))
    ca = str(demo.running.tls.ca_file)
    client = call_api.make_client(
        driver.issuer, registered.client_id, registered.key.private_jwk(), ca_file=ca
    )
    try:
        url, handle = call_api.begin(client, demo.api.url)
        browser = driver.browser()
        page = browser.submit(browser.get(url), {"username": driver.add_user(), "password": PASSWORD})
        final = browser.submit(page, {"decision": "approve"}, follow=False)
        assert final.headers["location"].startswith("https://app.example/cb?")
        answer = call_api.finish(
            client,
            final.headers["location"],
            handle,
            demo.api.url,
            verify=ssl.create_default_context(cafile=ca),
        )
    finally:
        client.close()
    assert answer["accounts"] and answer["client_id"] == registered.client_id, answer
