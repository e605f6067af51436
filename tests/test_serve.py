"""`corridor serve` as a user runs it: a real process, dev mode, restarts, several processes
on one database, and the CLI."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from corridor.core.clock import MovableClock
from corridor.core.jose import SigningKey
from corridor.store.sql import Store
from corridor.transport.tls import DevTLS
from tests.support import Client, Driver, RunningAS, free_socket

CORRIDOR = [sys.executable, "-m", "corridor.cli"]


def corridor(*args: str, data_dir: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CORRIDOR, *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextmanager
def serve(data_dir: Path, issuer: str | None = None) -> Iterator[tuple[RunningAS, str]]:
    sock, mtls_sock = free_socket(), free_socket()
    port, mtls_port = sock.getsockname()[1], mtls_sock.getsockname()[1]
    sock.close()
    mtls_sock.close()
    base = f"https://localhost:{port}"
    issuer = issuer or base
    process = subprocess.Popen(
        [
            *CORRIDOR,
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--issuer",
            issuer,
            "--mtls-port",
            str(mtls_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ca = data_dir / "tls" / "ca.pem"
    deadline = time.time() + 30
    while True:
        try:
            if (
                ca.exists()
                and httpx.get(base + "/jwks", verify=ssl.create_default_context(cafile=str(ca))).status_code
                == 200
            ):
                break
        except httpx.HTTPError:
            pass
        if time.time() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(
                f"corridor serve did not start: {process.stdout.read() if process.stdout else ''}"
            )
        time.sleep(0.2)
    tls = DevTLS(ca, data_dir / "tls" / "server.pem", data_dir / "tls" / "server-key.pem")
    store = Store(f"sqlite:///{data_dir / 'corridor.db'}")
    running = RunningAS(issuer, tls, MovableClock(), store, None, data_dir, base_url=base)
    output = ""
    try:
        yield running, output
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output = process.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate()[0]
        store.close()
        assert "Traceback" not in output, output


def demo_client(data_dir: Path) -> Client:
    key = SigningKey(json.loads((data_dir / "demo-client-key.json").read_text()))
    return Client("demo-client", key, SigningKey.generate("ES256"), "http://127.0.0.1:8765/callback")


def test_dev_mode_first_start_and_restart_keep_everything(tmp_path: Path) -> None:
    """Dev mode creates CA, database, keys, demo user and client; a restart keeps grants and keys."""
    data_dir = tmp_path / "data"
    with serve(data_dir) as (running, _):
        assert (data_dir / "tls" / "ca.pem").exists() and (data_dir / "corridor.db").exists()
        driver = Driver(running)
        client = demo_client(data_dir)
        password = (data_dir / "demo-user-password.txt").read_text().strip()
        response, flow = driver.par(client)
        assert response.status_code == 201, response.text
        browser = driver.browser()
        login = browser.get(
            driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
        )
        consent = browser.submit(login, {"username": "demo", "password": password})
        final = browser.submit(consent, {"decision": "approve"}, follow=False)
        assert final.headers["location"].startswith("http://127.0.0.1:8765/callback?code=")
        from urllib.parse import parse_qs, urlsplit

        flow.code = parse_qs(urlsplit(final.headers["location"]).query)["code"][0]
        tokens = driver.redeem(client, flow).json()
        jwks_before = driver.http.get(driver.url("/jwks")).json()
        nonce_before = driver.fresh_nonce()
    with serve(data_dir) as (running, _):
        driver = Driver(running)
        assert driver.http.get(driver.url("/jwks")).json() == jwks_before
        # A nonce issued before the restart is still accepted (derived from the stored secret).
        proof = driver.proof(client, "POST", driver.url("/token"), nonce=nonce_before)
        form = {
            **driver.client_auth(client),
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
        }
        refreshed = driver.http.post(driver.url("/token"), data=form, headers={"DPoP": proof})
        assert refreshed.status_code == 200, refreshed.text


def test_two_processes_share_nonces_and_replay_caches(tmp_path: Path) -> None:
    """Two server processes on one database behind one issuer (as behind a load balancer):
    a nonce from one is accepted by the other, and a request replayed at the other (same
    client assertion, same DPoP proof) is refused."""
    data_dir = tmp_path / "data"
    with serve(data_dir) as (first, _):
        issuer = first.issuer
        with serve(data_dir, issuer=issuer) as (second, _):
            one, two = Driver(first), Driver(second)
            client = demo_client(data_dir)
            nonce = one.fresh_nonce()
            form = {
                "response_type": "code",
                "client_id": client.client_id,
                "redirect_uri": client.redirect_uri,
                "scope": "openid",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
                **one.client_auth(client),
            }
            proof = one.proof(client, "POST", issuer + "/par", nonce=nonce)
            assert two.http.post(two.url("/par"), data=form, headers={"DPoP": proof}).status_code == 201
            replay = one.http.post(one.url("/par"), data=form, headers={"DPoP": proof})
            assert replay.status_code == 400 and replay.json()["error"] == "invalid_dpop_proof"
            fresh_proof = one.proof(client, "POST", issuer + "/par", nonce=nonce)
            replay = one.http.post(one.url("/par"), data=form, headers={"DPoP": fresh_proof})
            assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"


def test_cli_clients_and_users(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert corridor("db", "upgrade", data_dir=data_dir).returncode == 0  # issue 13 F2: not made by client add
    key = SigningKey.generate("ES256")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.public_jwk]}))
    added = corridor(
        "client",
        "add",
        "--name",
        "CLI app",
        "--redirect-uri",
        "https://app.example/cb",
        "--jwks-file",
        str(jwks),
        "--scope",
        "openid accounts",
        "--json",
        data_dir=data_dir,
    )
    assert added.returncode == 0, added.stderr
    registered = json.loads(added.stdout)
    assert registered["token_endpoint_auth_method"] == "private_key_jwt"
    assert registered["dpop_bound_access_tokens"] is True
    client_id = registered["client_id"]
    assert len(client_id) >= 20
    listed = corridor("client", "list", data_dir=data_dir)
    assert client_id in listed.stdout
    shown = json.loads(corridor("client", "show", client_id, data_dir=data_dir).stdout)
    assert shown["redirect_uris"] == ["https://app.example/cb"]
    assert corridor("client", "remove", client_id, data_dir=data_dir).returncode == 0
    missing = corridor("client", "show", client_id, data_dir=data_dir)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr

    assert (
        corridor(
            "user", "add", "alice", "--password-stdin", data_dir=data_dir, stdin="a long password\n"
        ).returncode
        == 0
    )
    assert "alice" in corridor("user", "list", data_dir=data_dir).stdout
    duplicate = corridor(
        "user", "add", "alice", "--password-stdin", data_dir=data_dir, stdin="another password\n"
    )
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    assert corridor("user", "remove", "alice", data_dir=data_dir).returncode == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--redirect-uri", "http://app.example/cb"], "https"),
        (["--redirect-uri", "https://app.example/cb#frag"], "fragment"),
        # issue 13 C6: the consent page would show "user:pw@x.example" as the host
        (["--redirect-uri", "https://user:pw@x.example/cb"], "must not contain user information"),
        (["--redirect-uri", "https://bank.example@x.example/cb"], "must not contain user information"),
        (["--redirect-uri", "https://app.example/cb", "--jwks-uri", "http://app.example/jwks"], "https"),
        (["--redirect-uri", "https://app.example/cb", "--scope", "openid root"], "unknown scope"),
    ],
)
def test_cli_refuses_bad_metadata_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    key = SigningKey.generate("ES256")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.public_jwk]}))
    if "--jwks-uri" not in args:
        args = [*args, "--jwks-file", str(jwks)]
    result = corridor("client", "add", "--name", "x", *args, data_dir=tmp_path / "d")
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_registers_a_message_signing_client(tmp_path: Path) -> None:
    """Issue 17: the Message Signing client metadata from the front door, and its refusals."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [SigningKey.generate("ES256").public_jwk]}))
    base = [
        "client",
        "add",
        "--name",
        "x",
        "--redirect-uri",
        "https://a.example/cb",
        "--jwks-file",
        str(jwks),
    ]
    assert corridor("db", "upgrade", data_dir=tmp_path / "d").returncode == 0
    added = corridor(
        *base,
        "--require-signed-request-object",
        "--response-mode",
        "jwt",
        "--response-mode",
        "query.jwt",
        "--authorization-signed-response-alg",
        "ES256",
        "--json",
        data_dir=tmp_path / "d",
    )
    assert added.returncode == 0, added.stderr
    meta = json.loads(added.stdout)
    assert meta["require_signed_request_object"] is True
    assert meta["response_modes"] == ["jwt", "query.jwt"]
    assert meta["authorization_signed_response_alg"] == "ES256"
    plain = json.loads(corridor(*base, "--json", data_dir=tmp_path / "d").stdout)
    assert "require_signed_request_object" not in plain and "response_modes" not in plain
    for bad in (["--response-mode", "fragment.jwt"], ["--authorization-signed-response-alg", "RS256"]):
        refused = corridor(*base, *bad, data_dir=tmp_path / "d")
        assert refused.returncode == 2 and "Invalid value" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr


def test_cli_refuses_private_keys(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [SigningKey.generate("ES256").private_jwk()]}))
    result = corridor(
        "client",
        "add",
        "--name",
        "x",
        "--redirect-uri",
        "https://a.example/cb",
        "--jwks-file",
        str(jwks),
        data_dir=tmp_path / "d",
    )
    assert result.returncode == 1 and "private key material" in result.stderr


def test_a_new_user_following_the_readme(tmp_path: Path) -> None:
    """The README's by-hand path: serve, keygen, register a client and a user with the CLI,
    then run examples/fapi_flow.py (PAR, login, consent, token, userinfo) against it."""
    data_dir = tmp_path / "data"
    with serve(data_dir) as (running, _):
        public = subprocess.run(
            [*CORRIDOR, "client", "keygen", str(tmp_path / "my-key.json")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert public.returncode == 0, public.stderr
        added = corridor(
            "client",
            "add",
            "--name",
            "My app",
            "--redirect-uri",
            "https://app.example/cb",
            "--jwks-file",
            public.stdout.strip(),
            "--scope",
            "openid profile",
            data_dir=data_dir,
        )
        assert added.returncode == 0, added.stderr
        client_id = added.stdout.strip()
        user = corridor("user", "add", "me", "--password-stdin", data_dir=data_dir, stdin="my password 123\n")
        assert user.returncode == 0, user.stderr
        (tmp_path / "pw").write_text("my password 123\n")
        example = Path(__file__).parent.parent / "examples" / "fapi_flow.py"
        result = subprocess.run(
            [
                sys.executable,
                str(example),
                "--issuer",
                running.issuer,
                "--client-id",
                client_id,
                "--key",
                str(tmp_path / "my-key.json"),
                "--ca",
                str(running.tls.ca_file),
                "--redirect-uri",
                "https://app.example/cb",
                "--username",
                "me",
                "--password-file",
                str(tmp_path / "pw"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "PAR -> 201" in result.stdout
        assert "iss and state checked" in result.stdout
        assert '"token_type": "DPoP"' in result.stdout
        assert 'userinfo -> 200 {"sub":' in result.stdout and '"preferred_username":"me"' in result.stdout


def test_cli_refuses_client_id_that_looks_like_a_subject(tmp_path: Path) -> None:
    """AS36 / FAPI2 6.7: a chosen client_id must not be mistakable for a user's sub."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [SigningKey.generate("ES256").public_jwk]}))
    result = corridor(
        "client",
        "add",
        "--name",
        "x",
        "--redirect-uri",
        "https://a.example/cb",
        "--jwks-file",
        str(jwks),
        "--client-id",
        "0123456789abcdef0123456789abcdef",
        data_dir=tmp_path / "d",
    )
    assert result.returncode == 1 and "user identifier" in result.stderr
