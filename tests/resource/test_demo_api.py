"""The demo payments API (examples/payments_api, ``corridor demo-api``) end to end over real
HTTPS: ``corridor serve`` and ``corridor demo-api`` as processes on free ports, the API
registered with ``corridor resource add``, tokens from real flows at the AS (DPoP-bound for
the demo client, certificate-bound for a self-signed mTLS client registered with the CLI),
and panva's oauth4webapi calling the API with ``protectedResourceRequest``."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from corridor.core.dpop import make_proof
from corridor.core.jose import SigningKey
from tests.interop.node import NodeFlow
from tests.pki import ClientCert, TestPKI
from tests.resource.race_workers import post_after_barrier
from tests.server.test_mtls import authorized, code_form, token
from tests.support import REDIRECT_URI, Client, Driver, RunningAS, decode_jwt, free_socket
from tests.test_serve import CORRIDOR, corridor, demo_client, serve

API_SCOPE = "openid accounts payments"
NODE_SCRIPT = Path(__file__).parent.parent / "interop" / "oauth4webapi_resource.mjs"


def payment_details(amount: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "payment_initiation",
            "instructedAmount": {"currency": "EUR", "amount": amount},
            "creditorName": "Merchant A",
        }
    ]


def payment(amount: str, currency: str = "EUR", creditor: str = "Merchant A") -> dict[str, Any]:
    return {"amount": amount, "currency": currency, "creditorName": creditor}


@dataclass
class DemoAPI:
    """``corridor demo-api`` in a child process."""

    url: str
    ca_file: Path
    log_file: Path
    #: The API's current DPoP nonce (RFC 9449 9), learnt from its use_dpop_nonce challenges.
    nonce: str | None = None
    #: The resource identifier (DPoP htu base) when it is not ``url`` (a second instance).
    resource: str = ""

    @property
    def public(self) -> str:
        return self.resource or self.url

    def http(self, cert: ClientCert | None = None) -> httpx.Client:
        context = (
            cert.ssl_context(self.ca_file) if cert else ssl.create_default_context(cafile=str(self.ca_file))
        )
        return httpx.Client(verify=context, timeout=20)


@contextmanager
def demo_api(
    data_dir: Path, port: int, issuer: str, env: dict[str, str] | None = None, *, resource: str = ""
) -> Iterator[DemoAPI]:
    """``corridor demo-api`` on ``port``; ``resource``: another instance's identifier (the same
    API, a second process on the same data directory and so the same payments ledger)."""
    log_file = data_dir.parent / f"demo-api-{port}.log"
    extra = ["--resource", resource] if resource else []
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [
                *CORRIDOR,
                "demo-api",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--issuer",
                issuer,
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    api = DemoAPI(f"https://127.0.0.1:{port}", data_dir / "tls" / "ca.pem", log_file, resource=resource)
    deadline = time.time() + 30
    try:
        while True:
            try:
                with api.http() as http:
                    if http.get(api.url + "/.well-known/oauth-protected-resource").status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or process.poll() is not None:
                raise RuntimeError(f"corridor demo-api did not start: {log_file.read_text()}")
            time.sleep(0.2)
        yield api
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output = log_file.read_text()
        assert "Traceback" not in output, output


@dataclass
class Demo:
    running: RunningAS
    api: DemoAPI
    data_dir: Path
    mtls_client: Client
    mtls_cert: ClientCert

    def driver(self) -> Driver:
        return Driver(self.running)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, pki: TestPKI) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("demo-api") / "data"
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    url = f"https://127.0.0.1:{port}"
    # Registered before the AS starts (dev mode then adds no resource of its own), in a database
    # made by `corridor db upgrade` (issue 13 F2: other commands do not create one).
    assert corridor("db", "upgrade", data_dir=data_dir).returncode == 0
    added = corridor(
        "resource",
        "add",
        url,
        "--name",
        "Demo payments API",
        "--scope",
        "accounts payments",
        data_dir=data_dir,
    )
    assert added.returncode == 0, added.stderr
    cert = pki.self_signed("CN=demo api mtls client")
    added = corridor(
        "client",
        "add",
        "--name",
        "mTLS app",
        "--redirect-uri",
        REDIRECT_URI,
        "--auth-method",
        "self_signed_tls_client_auth",
        "--certificate",
        str(cert.cert_file),
        "--sender-constraint",
        "mtls",
        "--scope",
        API_SCOPE,
        "--json",
        data_dir=data_dir,
    )
    assert added.returncode == 0, added.stderr
    client = Client(json.loads(added.stdout)["client_id"], cert.signing_key(), SigningKey.generate("ES256"))
    with serve(data_dir) as (running, _), demo_api(data_dir, port, running.issuer) as api:
        yield Demo(running, api, data_dir, client, cert)


def dpop_token(
    demo: Demo, amount: str, username: str | None = None, details: list[dict[str, Any]] | None = None
) -> tuple[Client, str]:
    """The demo client's DPoP-bound token for the API, with one payment_initiation grant (of a
    new user, or of ``username``), or with ``details``."""
    client = demo_client(demo.data_dir)
    driver = demo.driver()
    extra = {
        "scope": API_SCOPE,
        "resource": demo.api.url,
        "authorization_details": json.dumps(details or payment_details(amount)),
    }
    response, flow = driver.par(client, extra=extra)
    assert response.status_code == 201, response.text
    final = driver.authorize(client, flow, username=username)
    assert final.status_code == 303 and flow.code, final.text
    redeemed = driver.redeem(client, flow)
    assert redeemed.status_code == 200, redeemed.text
    tokens = redeemed.json()
    driver.http.close()
    assert tokens["token_type"] == "DPoP"
    return client, tokens["access_token"]


@pytest.fixture(scope="module")
def dpop100(demo: Demo) -> tuple[Client, str]:
    return dpop_token(demo, "100.00")


@pytest.fixture(scope="module")
def mtls100(demo: Demo) -> str:
    """A certificate-bound token (self_signed_tls_client_auth at the mTLS aliases)."""
    driver = demo.driver()
    aliases = driver.http.get(driver.url("/.well-known/openid-configuration")).json()["mtls_endpoint_aliases"]
    client, cert = demo.mtls_client, demo.mtls_cert
    flow = authorized(
        driver,
        client,
        cert,
        url=aliases["pushed_authorization_request_endpoint"],
        extra={
            "scope": API_SCOPE,
            "resource": demo.api.url,
            "authorization_details": json.dumps(payment_details("100.00")),
        },
    )
    response = token(driver, client, cert, code_form(client, flow), url=aliases["token_endpoint"])
    driver.http.close()
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    assert decode_jwt(response.json()["access_token"])[1]["cnf"] == {"x5t#S256": cert.thumbprint}
    return str(response.json()["access_token"])


def dpop_call(
    api: DemoAPI, client: Client, access_token: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """A DPoP request, answering the API's use_dpop_nonce challenge once (RFC 9449 9)."""
    with api.http() as http:
        for _ in range(2):
            proof = make_proof(
                client.dpop_key, method, api.public + path, nonce=api.nonce, access_token=access_token
            )
            response = http.request(
                method,
                api.url + path,
                headers={"Authorization": f"DPoP {access_token}", "DPoP": proof},
                **kwargs,
            )
            if 'error="use_dpop_nonce"' not in response.headers.get("www-authenticate", ""):
                break
            api.nonce = response.headers["dpop-nonce"]
    return response


def mtls_call(
    demo: Demo, access_token: str, method: str, path: str, cert: ClientCert | None, **kwargs: Any
) -> httpx.Response:
    with demo.api.http(cert) as http:
        return http.request(
            method, demo.api.url + path, headers={"Authorization": f"Bearer {access_token}"}, **kwargs
        )


def challenge(response: httpx.Response, status: int, scheme: str, error: str) -> str:
    assert response.status_code == status, response.text
    value = response.headers["www-authenticate"]
    assert value.startswith(f'{scheme} error="{error}"'), value
    return value


def test_metadata_names_the_local_as(demo: Demo) -> None:
    """RFC 9728: what a client that knows only the API's URL needs to find the AS."""
    with demo.api.http() as http:
        metadata = http.get(demo.api.url + "/.well-known/oauth-protected-resource").json()
        bare = http.get(demo.api.url + "/accounts")
    assert metadata["resource"] == demo.api.url
    assert metadata["authorization_servers"] == [demo.running.issuer]
    assert metadata["scopes_supported"] == ["accounts", "payments"]
    assert metadata["authorization_details_types_supported"] == ["payment_initiation"]
    assert bare.status_code == 401 and len(bare.headers.get_list("www-authenticate")) == 2


def test_dpop_bound_token_reads_accounts(demo: Demo, dpop100: tuple[Client, str]) -> None:
    client, access_token = dpop100
    response = dpop_call(demo.api, client, access_token, "GET", "/accounts")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_id"] == "demo-client"
    assert body["accounts"][0]["currency"] == "EUR"
    # The same token from another key is refused (RFC 9449 7.1).
    stranger = Client(client.client_id, client.key, SigningKey.generate("ES256"))
    challenge(dpop_call(demo.api, stranger, access_token, "GET", "/accounts"), 401, "DPoP", "invalid_token")


def test_certificate_bound_token_reads_accounts(demo: Demo, mtls100: str) -> None:
    """RFC 8705 3: with the bound certificate on the connection, and refused without it."""
    response = mtls_call(demo, mtls100, "GET", "/accounts", demo.mtls_cert)
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == demo.mtls_client.client_id
    challenge(mtls_call(demo, mtls100, "GET", "/accounts", None), 401, "Bearer", "invalid_token")


def test_payments_within_and_beyond_the_authorized_amount(demo: Demo, dpop100: tuple[Client, str]) -> None:
    client, access_token = dpop100

    def pay(body: dict[str, Any]) -> httpx.Response:
        return dpop_call(demo.api, client, access_token, "POST", "/payments", json=body)

    accepted = pay(payment("60.00"))
    assert accepted.status_code == 201, accepted.text
    record = accepted.json()["payment"]
    assert record["instructedAmount"] == {"currency": "EUR", "amount": "60.00"}
    assert record in accepted.json()["payments"]
    # Limits are cumulative per grant (design.md 5b): 60 + 40.01 is beyond the 100 granted ...
    over = pay(payment("40.01"))
    challenge(over, 403, "DPoP", "insufficient_scope")
    assert "corridor/forbid-payment-over-granted-amount" in over.json()["error_description"]
    assert pay(payment("40")).status_code == 201  # ... 60 + 40 is exactly the granted amount
    for refused, policy in (
        (payment("0.01"), "corridor/forbid-payment-over-granted-amount"),
        (payment("0.01", currency="USD"), "corridor/forbid-payment-in-another-currency"),
        (payment("0.01", creditor="Merchant B"), "corridor/forbid-payment-to-another-creditor"),
    ):
        response = pay(refused)
        challenge(response, 403, "DPoP", "insufficient_scope")
        assert policy in response.json()["error_description"]
    assert pay({"amount": "1.001", "currency": "EUR", "creditorName": "Merchant A"}).status_code == 422
    listed = dpop_call(demo.api, client, access_token, "GET", "/accounts").json()["payments"]
    assert [p["instructedAmount"]["amount"] for p in listed] == ["60.00", "40.00"]


def test_large_payment_needs_step_up(demo: Demo) -> None:
    """RFC 9470: 600.00 is granted but above the 500.00 threshold, and the token's acr is password."""
    client, access_token = dpop_token(demo, "1000.00")
    assert decode_jwt(access_token)[1]["acr"] == "password"
    response = dpop_call(demo.api, client, access_token, "POST", "/payments", json=payment("600.00"))
    value = challenge(response, 401, "DPoP", "insufficient_user_authentication")
    assert 'acr_values="mfa"' in value
    # Beyond the grant it is a scope matter (a stronger login would not help).
    response = dpop_call(demo.api, client, access_token, "POST", "/payments", json=payment("1000.01"))
    challenge(response, 403, "DPoP", "insufficient_scope")
    response = dpop_call(demo.api, client, access_token, "POST", "/payments", json=payment("500.00"))
    assert response.status_code == 201, response.text


def test_certificate_bound_payments(demo: Demo, mtls100: str) -> None:
    """The challenges for a certificate-bound token use the Bearer scheme."""
    accepted = mtls_call(demo, mtls100, "POST", "/payments", demo.mtls_cert, json=payment("99.99"))
    assert accepted.status_code == 201, accepted.text
    refused = mtls_call(demo, mtls100, "POST", "/payments", demo.mtls_cert, json=payment("100.01"))
    challenge(refused, 403, "Bearer", "insufficient_scope")


def test_decisions_are_audit_records(demo: Demo) -> None:
    """Each allow and refuse of the API is an evidence record in the AS's database, with the
    payment's terms, the values the policy compared, and for an accepted payment its result in a
    second record linked to the first (issue 16)."""
    body = {
        **payment("10.00"),
        "creditorAccount": {"iban": "DE89370400440532013000"},
        "remittanceInformation": "Invoice 7 card 4111 1111 1111 1111",
    }
    client, access_token = dpop_token(demo, "100.00")  # a grant of its own: nothing spent yet
    accepted = dpop_call(demo.api, client, access_token, "POST", "/payments", json=body)
    assert accepted.status_code == 201, accepted.text
    dpop_call(demo.api, client, access_token, "POST", "/payments", json=payment("200.00"))
    claims = decode_jwt(access_token)[1]
    jti = claims["jti"]
    records = [
        r
        for r in demo.running.store.audit.records()
        if r["event"] in ("rs.access", "rs.result") and r["token_jti"] == jti
    ]
    decisions = [(r["outcome"], r["error"], r["rule"], json.loads(r["detail"])["route"]) for r in records]
    # Issue 8: the tool action and the Cedar policies that decided are in each record.
    allowed = next(d for d in decisions if d[0] == "allowed" and d[3] == "/payments")
    assert allowed[2] == "Cedar: corridor/permit-by-route-scope, corridor/permit-granted-tool-action"
    refused = (
        "refused",
        "insufficient_scope",
        "Cedar: corridor/forbid-payment-over-granted-amount",
        "/payments",
    )
    assert refused in decisions
    # Issue 16: every record links to the grant by the token's grant_id, not a guess.
    assert {r["grant_id"] for r in records} == {claims["grant_id"]}
    allow = next(r for r in records if r["event"] == "rs.access" and r["outcome"] == "allowed")
    detail = json.loads(allow["detail"])
    assert detail["action"] == {
        "name": "make_payment",
        "tool": "make_payment",
        "parameters": {
            "amount": "10.00",
            "currency": "EUR",
            "creditor_name": "Merchant A",
            "creditor_account": "DE89370400440532013000",
            "reference": "Invoice 7 card …1111",
        },
        "redacted": ["reference"],
    }
    done = next(r for r in records if r["event"] == "rs.result")
    assert (done["outcome"], done["request_id"]) == ("completed", allow["request_id"])
    assert records.index(done) == records.index(allow) + 1
    assert json.loads(done["detail"])["result"] == {
        "payment_id": accepted.json()["payment"]["paymentId"],
        "status": "accepted",
    }
    refusal = next(r for r in records if r["outcome"] == "refused")
    detail = json.loads(refusal["detail"])
    assert detail["tool_action"] == "make_payment"
    assert detail["action"]["parameters"]["amount"] == "200.00"
    policy = detail["policy"]
    assert (policy["decision"], policy["policies"], policy["engine"]) == (
        "deny",
        ["corridor/forbid-payment-over-granted-amount"],
        "cedar",
    )
    # The amounts compared: 200.00 requested + 10.00 already paid > the 100.00 granted.
    assert policy["compared"]["request"]["amount_minor"] == 20000
    assert (policy["compared"]["payment"]["spent_minor"], policy["compared"]["payment"]["limit_minor"]) == (
        1000,
        10000,
    )
    assert not any(r["outcome"] == "refused" and r["event"] == "rs.result" for r in records)
    assert "4111 1111 1111 1111" not in json.dumps(records)
    last = records[-1]
    assert last["client_id"] == client.client_id
    assert last["sender_constraint"] == "dpop" and last["key_thumbprint"] == claims["cnf"]["jkt"]
    assert json.loads(last["resource"]) == demo.api.url


def test_oauth4webapi_protected_resource_request(demo: Demo, dpop100: tuple[Client, str]) -> None:
    """panva's oauth4webapi: protectedResourceRequest with DPoP, answering the API's nonce."""
    client, access_token = dpop100
    env = {
        **os.environ,
        "NODE_EXTRA_CA_CERTS": str(demo.api.ca_file),
        "CORRIDOR_RESOURCE_URL": demo.api.url + "/accounts",
        "CORRIDOR_ACCESS_TOKEN": access_token,
        "CORRIDOR_DPOP_JWK": json.dumps(client.dpop_key.private_jwk()),
        "CORRIDOR_CLIENT_ID": client.client_id,
    }
    flow = NodeFlow(NODE_SCRIPT.name, env)
    try:
        result = flow.read()["result"]
        assert flow.process.wait(10) == 0, flow.diagnostics()
    finally:
        flow.close()
    assert result["dpop_jkt"] == client.dpop_key.thumbprint()
    first, second = result["calls"]
    assert first["status"] == 200 and first["body"]["client_id"] == "demo-client"
    assert first["retries"] == 1  # the API's use_dpop_nonce challenge, answered once
    assert second["status"] == 200 and second["retries"] == 0  # the cached nonce


def test_cli_refuses_a_bad_threshold(tmp_path: Path) -> None:
    result = corridor("demo-api", "--step-up-threshold", "lots", data_dir=tmp_path / "data")
    assert result.returncode != 0 and "step-up-threshold" in result.stderr
    assert "Traceback" not in result.stderr


def test_step_up_with_totp_end_to_end(demo: Demo) -> None:
    """Issue 8 part 3 / RFC 9470: the API asks for acr mfa; the client library reads the
    challenge and asks again with acr_values; the AS asks for a TOTP code in the same browser
    session; the new token's acr and auth_time prove it; the payment goes through."""
    from urllib.parse import parse_qs, urlsplit

    import pyotp

    from corridor.client.flow import step_up_challenge

    driver = demo.driver()
    username = driver.add_user()
    enrolled = corridor("user", "totp", username, data_dir=demo.data_dir)
    assert enrolled.returncode == 0, enrolled.stderr
    uri = enrolled.stdout.strip()
    assert uri.startswith("otpauth://totp/")
    totp = pyotp.TOTP(parse_qs(urlsplit(uri).query)["secret"][0])
    client = demo_client(demo.data_dir)
    extra = {
        "scope": API_SCOPE,
        "resource": demo.api.url,
        "authorization_details": json.dumps(payment_details("1000.00")),
    }
    browser = driver.browser()

    response, flow = driver.par(client, extra=extra)
    assert response.status_code == 201
    driver.authorize(client, flow, browser=browser, username=username)  # password only
    first = driver.redeem(client, flow).json()
    assert decode_jwt(first["access_token"])[1]["acr"] == "password"
    refused = dpop_call(demo.api, client, first["access_token"], "POST", "/payments", json=payment("600.00"))
    wanted = step_up_challenge(refused)
    assert wanted is not None and wanted.acr_values == "mfa"

    response, flow = driver.par(client, extra={**extra, "acr_values": wanted.acr_values})
    assert response.status_code == 201
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    assert 'name="code"' in page.text and 'name="password"' not in page.text  # the session is kept
    wrong = browser.submit(page, {"code": f"{(int(totp.now()) + 1) % 1_000_000:06d}"}, follow=False)
    assert wrong.status_code == 400 and 'name="code"' in wrong.text
    consent = browser.submit(wrong, {"code": totp.now()})
    assert 'value="approve"' in consent.text, consent.text
    final = browser.submit(consent, {"decision": "approve"}, follow=False)
    flow.code = parse_qs(urlsplit(final.headers["location"]).query)["code"][0]
    second = driver.redeem(client, flow)
    assert second.status_code == 200, second.text
    claims = decode_jwt(second.json()["access_token"])[1]
    assert claims["acr"] == "mfa" and time.time() - claims["auth_time"] < 60
    paid = dpop_call(
        demo.api, client, second.json()["access_token"], "POST", "/payments", json=payment("600.00")
    )
    assert paid.status_code == 201, paid.text
    driver.http.close()


# -- issue 13 D6: the ledger is per grant, durable, atomic; the step-up threshold is cumulative -------


@pytest.fixture(scope="module")
def second(demo: Demo) -> Iterator[DemoAPI]:
    """A second instance of the same API (same resource identifier, same data directory, so the
    same payments ledger) in a process of its own, as a deployment with two API processes."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    with demo_api(demo.data_dir, port, demo.running.issuer, resource=demo.api.url) as api:
        yield api


def ledger_row(demo: Demo, access_token: str) -> tuple[int, int]:
    """What the ledger database holds for the token's grant: its spent amount and its payments."""
    from examples.payments_api.app import grant_key_of

    claims = decode_jwt(access_token)[1]
    key = grant_key_of(claims["iss"], claims["grant_id"])
    with sqlite3.connect(demo.data_dir / "demo-payments.db") as db:
        spent = db.execute("SELECT spent_minor FROM demo_grants WHERE grant_key = ?", (key,)).fetchone()
        (count,) = db.execute("SELECT count(*) FROM demo_payments WHERE grant_key = ?", (key,)).fetchone()
    return (spent[0] if spent else 0), count


def nonce_of(api: DemoAPI, client: Client, access_token: str) -> str:
    """The instance's DPoP nonce, learnt from a read."""
    response = dpop_call(api, client, access_token, "GET", "/accounts")
    assert response.status_code == 200, response.text
    assert api.nonce is not None
    return api.nonce


def test_concurrent_payments_cannot_pass_the_grant_together(demo: Demo, second: DemoAPI) -> None:
    """issue 13 D6: six OS processes post 40.00 at once against a grant of 100.00, half to each of
    two API processes: exactly two are accepted, and the ledger holds 80.00 and two payments
    (the check was made before the payment was booked, so concurrent payments all passed)."""
    client, access_token = dpop_token(demo, "100.00")
    instances = [demo.api, second]
    nonces = [nonce_of(api, client, access_token) for api in instances]
    context = multiprocessing.get_context("spawn")
    workers = 6
    with context.Manager() as manager, ProcessPoolExecutor(workers, mp_context=context) as pool:
        barrier = manager.Barrier(workers)
        futures = []
        for i in range(workers):
            api = instances[i % 2]
            headers = {
                "Authorization": f"DPoP {access_token}",
                "DPoP": make_proof(
                    client.dpop_key,
                    "POST",
                    api.public + "/payments",
                    nonce=nonces[i % 2],
                    access_token=access_token,
                ),
            }
            futures.append(
                pool.submit(
                    post_after_barrier,
                    api.url + "/payments",
                    headers,
                    payment("40.00"),
                    str(api.ca_file),
                    barrier,
                )
            )
        statuses = sorted(f.result(timeout=120) for f in futures)
    assert statuses == [201, 201, 403, 403, 403, 403], statuses
    assert ledger_row(demo, access_token) == (8000, 2)


def test_a_grant_spent_is_kept_by_every_instance(demo: Demo, second: DemoAPI) -> None:
    """issue 13 D6: what a grant spent is durable, in the database, not in one process's memory."""
    client, access_token = dpop_token(demo, "100.00")
    first = dpop_call(demo.api, client, access_token, "POST", "/payments", json=payment("60.00"))
    assert first.status_code == 201, first.text
    again = dpop_call(second, client, access_token, "POST", "/payments", json=payment("60.00"))
    challenge(again, 403, "DPoP", "insufficient_scope")
    assert "corridor/forbid-payment-over-granted-amount" in again.json()["error_description"]
    assert ledger_row(demo, access_token) == (6000, 1)


def test_separate_grants_have_budgets_of_their_own(demo: Demo) -> None:
    """issue 13 D6: two grants with the same details (same client, user, amount, creditor) are two
    budgets: the token's grant_id names the grant (the second was refused, the budget shared)."""
    driver = demo.driver()
    username = driver.add_user()
    driver.http.close()
    tokens = [dpop_token(demo, "100.00", username), dpop_token(demo, "100.00", username)]
    for client, access_token in tokens:
        response = dpop_call(demo.api, client, access_token, "POST", "/payments", json=payment("60.00"))
        assert response.status_code == 201, response.text
    one, other = (decode_jwt(access_token)[1] for _, access_token in tokens)
    assert (one["client_id"], one["sub"], one["authorization_details"]) == (
        other["client_id"],
        other["sub"],
        other["authorization_details"],
    )
    assert one["grant_id"] != other["grant_id"]
    for _, access_token in tokens:
        assert ledger_row(demo, access_token) == (6000, 1)


def test_the_step_up_threshold_is_cumulative_per_grant(demo: Demo) -> None:
    """issue 13 D6: two payments of 500.00 at the password level no longer pass a threshold of
    500.00; the second asks for mfa (RFC 9470), and nothing of it is booked."""
    client, access_token = dpop_token(demo, "1000.00")
    assert decode_jwt(access_token)[1]["acr"] == "password"
    first = dpop_call(demo.api, client, access_token, "POST", "/payments", json=payment("500.00"))
    assert first.status_code == 201, first.text
    for amount in ("500.00", "0.01"):
        response = dpop_call(demo.api, client, access_token, "POST", "/payments", json=payment(amount))
        value = challenge(response, 401, "DPoP", "insufficient_user_authentication")
        assert 'acr_values="mfa"' in value
        assert "payments above 500.00 in all" in value
    assert ledger_row(demo, access_token) == (50000, 1)


def test_each_approved_creditor_has_its_own_amount(demo: Demo) -> None:
    """issue 13 D4 through the demo API: two approved payment_initiation entries, each paid up
    to its own amount (the second creditor was refused), and the grant's total in the ledger."""
    details = [
        *payment_details("100.00"),
        {
            "type": "payment_initiation",
            "instructedAmount": {"currency": "EUR", "amount": "50.00"},
            "creditorName": "Merchant B",
        },
    ]
    client, access_token = dpop_token(demo, "", details=details)

    def pay(amount: str, creditor: str) -> httpx.Response:
        body = payment(amount, creditor=creditor)
        return dpop_call(demo.api, client, access_token, "POST", "/payments", json=body)

    assert pay("100.00", "Merchant A").status_code == 201
    second = pay("50.00", "Merchant B")
    assert second.status_code == 201, second.text
    for creditor in ("Merchant A", "Merchant B"):
        refused = pay("0.01", creditor)
        challenge(refused, 403, "DPoP", "insufficient_scope")
        assert "corridor/forbid-payment-over-granted-amount" in refused.json()["error_description"]
    assert ledger_row(demo, access_token) == (15000, 2)
