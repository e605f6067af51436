"""Corridor as ``make run`` starts it (``corridor serve`` in dev mode: SQLite, local TLS; and
``corridor demo-api`` beside it as the resource and the default token audience), with the
two clients per variant that ``corridor check`` needs, registered by the CLI, and the check's
configuration file written beside their keys."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from corridor.core.jose import SigningKey
from tests.pki import TestPKI
from tests.support import free_socket
from tests.test_serve import CORRIDOR, corridor

PAIRS = ("private_key_jwt+dpop", "private_key_jwt+mtls", "mtls+dpop", "mtls+mtls")
#: The Message Signing clients' pairs (two variants: the suite's time, see test_check_corridor.py).
MESSAGE_SIGNING_PAIRS = ("private_key_jwt+dpop", "mtls+mtls")
REDIRECTS = ("https://client.example/cb", "https://client.example/cb?dummy1=lorem&dummy2=ipsum")
SCOPE = "openid offline_access accounts"


@dataclass
class CorridorStack:
    config_path: Path
    #: The Message Signing plan's configuration: clients registered with
    #: --require-signed-request-object --response-mode jwt (variants "pair+jar+jarm").
    message_signing_config_path: Path
    issuer: str
    api_url: str
    data_dir: Path
    ca_file: Path
    log_files: tuple[Path, ...]

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.log_files if path.exists())


def _port() -> int:
    sock = free_socket()
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def _wait(url: str, ca: Path, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.time() + 40
    while True:
        try:
            if (
                ca.exists()
                and httpx.get(url, verify=ssl.create_default_context(cafile=str(ca))).status_code == 200
            ):
                return
        except (httpx.HTTPError, ssl.SSLError):
            pass
        if time.time() > deadline or process.poll() is not None:
            raise RuntimeError(f"{url} did not come up: {log.read_text(errors='replace')}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def register_clients(
    data_dir: Path, directory: Path, api_url: str, *, message_signing: bool = False
) -> list[dict[str, object]]:
    """Two clients per client-auth x sender pair, each with its own key and certificate; with
    ``message_signing``, for the Message Signing pairs, registered to sign their requests and
    receive JARM responses (every client's JWKS then has its request object key)."""
    pki = TestPKI(directory / ("pki-ms" if message_signing else "pki"))
    entries: list[dict[str, object]] = []
    for pair in MESSAGE_SIGNING_PAIRS if message_signing else PAIRS:
        auth, sender = pair.split("+")
        for n, redirect in enumerate(REDIRECTS, start=1):
            client_id = f"check-{'ms-' if message_signing else ''}{auth.replace('_', '-')}-{sender}-{n}"
            # PS256 for the first client (the suite's RS256-assertion module needs an RSA key).
            key = SigningKey.generate("PS256" if n == 1 else "ES256")
            jwk_file = directory / f"{client_id}.private.jwk.json"
            jwk_file.write_text(json.dumps(key.private_jwk()))
            public = directory / f"{client_id}.jwks.json"
            public.write_text(json.dumps({"keys": [key.public_jwk]}))
            cert = pki.self_signed(f"CN={client_id}")
            args = [
                "client",
                "add",
                "--name",
                f"Check client {n} ({pair})",
                "--redirect-uri",
                redirect,
                "--scope",
                SCOPE,
                "--sender-constraint",
                sender,
                "--client-id",
                client_id,
                "--resource",
                api_url,
            ]
            # The certificate is registered (JWKS x5c) for every client: Corridor's mTLS listener
            # trusts registered self-signed certificates only (design.md 5), and certificate-bound
            # tokens of a private_key_jwt client need one too.
            args += ["--certificate", str(cert.cert_file)]
            if auth == "private_key_jwt" or message_signing:
                args += ["--jwks-file", str(public)]
            if auth == "mtls":
                args += ["--auth-method", "self_signed_tls_client_auth"]
            if message_signing:
                args += ["--require-signed-request-object", "--response-mode", "jwt"]
            added = corridor(*args, data_dir=data_dir)
            assert added.returncode == 0, added.stderr
            entries.append(
                {
                    "client_id": client_id,
                    "jwk_file": jwk_file.name,
                    "cert_file": os.path.relpath(cert.cert_file, directory),
                    "cert_key_file": os.path.relpath(cert.key_file, directory),
                    "redirect_uri": redirect,
                    "scope": SCOPE,
                    "variants": [pair + ("+jar+jarm" if message_signing else "")],
                }
            )
    return entries


def _toml_value(value: object) -> str:
    return json.dumps(value)


def write_config(
    path: Path,
    issuer: str,
    ca: Path,
    resource: str,
    username: str,
    password: str,
    clients: list[dict[str, object]],
    *,
    plan: str = "security-profile",
) -> None:
    lines = [
        f"issuer = {_toml_value(issuer)}",
        f"plan = {_toml_value(plan)}",
        f"ca_file = {_toml_value(os.path.relpath(ca, path.parent))}",
        "",
        "[resource]",
        f"url = {_toml_value(resource)}",
        'method = "GET"',
        "",
        "[login]",
        'method = "html-form"',
        f"username = {_toml_value(username)}",
        f"password = {_toml_value(password)}",
        "",
    ]
    for entry in clients:
        lines.append("[[clients]]")
        lines.extend(f"{name} = {_toml_value(value)}" for name, value in entry.items())
        lines.append("")
    path.write_text("\n".join(lines))


@contextmanager
def corridor_for_check(directory: Path, *, env: dict[str, str] | None = None) -> Iterator[CorridorStack]:
    """``corridor serve`` + ``corridor demo-api`` on free ports, 8 check clients, a config."""
    data_dir = directory / "data"
    port, mtls_port, api_port = _port(), _port(), _port()
    issuer = f"https://localhost:{port}"
    api_url = f"https://127.0.0.1:{api_port}"
    assert corridor("db", "upgrade", data_dir=data_dir).returncode == 0
    added = corridor(
        "resource",
        "add",
        api_url,
        "--name",
        "Demo payments API",
        "--scope",
        "accounts payments",
        data_dir=data_dir,
    )
    assert added.returncode == 0, added.stderr
    check_dir = directory / "check"
    check_dir.mkdir()
    clients = register_clients(data_dir, check_dir, api_url)
    signing_clients = register_clients(data_dir, check_dir, api_url, message_signing=True)
    full_env = {**os.environ, "CORRIDOR_DEFAULT_RESOURCE": api_url, **(env or {})}
    as_log, api_log = directory / "serve.log", directory / "demo-api.log"
    with as_log.open("w") as log:
        serve = subprocess.Popen(
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
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
        )
    ca = data_dir / "tls" / "ca.pem"
    api: subprocess.Popen[str] | None = None
    try:
        _wait(issuer + "/jwks", ca, serve, as_log)
        with api_log.open("w") as log:
            api = subprocess.Popen(
                [
                    *CORRIDOR,
                    "demo-api",
                    "--data-dir",
                    str(data_dir),
                    "--port",
                    str(api_port),
                    "--issuer",
                    issuer,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env=full_env,
            )
        _wait(api_url + "/.well-known/oauth-protected-resource", ca, api, api_log)
        password = (data_dir / "demo-user-password.txt").read_text().strip()
        config_path = check_dir / "check.toml"
        write_config(config_path, issuer, ca, api_url + "/accounts", "demo", password, clients)
        ms_path = check_dir / "message-signing.toml"
        write_config(
            ms_path,
            issuer,
            ca,
            api_url + "/accounts",
            "demo",
            password,
            signing_clients,
            plan="message-signing",
        )
        yield CorridorStack(config_path, ms_path, issuer, api_url, data_dir, ca, (as_log, api_log))
    finally:
        if api is not None:
            _stop(api)
        _stop(serve)


def main(argv: list[str] | None = None) -> int:
    """``make check-report``: Corridor as ``make run`` starts it, checked in all 8 variants;
    the report written where the arguments say (``--html F --markdown F ...``)."""
    import sys
    import tempfile

    args = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory() as tmp, corridor_for_check(Path(tmp)) as running:
        result = subprocess.run([*CORRIDOR, "check", str(running.config_path), "--all-variants", *args])
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
