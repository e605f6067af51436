"""Corridor behind a real nginx (deploy/nginx): the documented configuration, rendered with this
test's ports and paths, carries a full tls_client_auth flow with certificate-bound tokens, and
certificate headers forged by anyone but nginx are ignored (RFC 8705, RFC 9440, RFC 9700 4.13)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from corridor.core.clock import MovableClock
from corridor.core.jose import SigningKey
from corridor.store.sql import Store
from corridor.transport.tls import DevTLS
from tests.pki import ClientCert, TestPKI
from tests.server.test_mtls import assert_invalid_client, code_form, par, token, userinfo
from tests.support import PASSWORD, Client, Driver, Flow, RunningAS, decode_jwt, free_socket

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"
CORRIDOR = [sys.executable, "-m", "corridor.cli"]
#: nginx connects to Corridor from here (proxy_bind); the test's own connections come from 127.0.0.1.
PROXY_ADDRESS = "127.0.0.2"
PKI_DN = "CN=nginx client,O=Test"
REDIRECT_URI = "https://client.example.org/cb"
USERNAME = "nginx-user"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def nginx_binary() -> str:
    """nginx from PATH or Debian's /usr/sbin; skip without it, or fail where it is required (CI)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        reason = (
            "nginx is not installed (Debian: apt-get install nginx); "
            "the deploy/nginx configuration is not exercised"
        )
        if os.environ.get("CORRIDOR_REQUIRE_NGINX"):
            pytest.fail(reason + " and CORRIDOR_REQUIRE_NGINX is set")
        pytest.skip(reason)
    return found


def render(template: Path, values: dict[str, str]) -> str:
    """Fill the upper-case ${...} placeholders of a deploy template (what envsubst does in README.md)."""
    text = template.read_text()
    missing = sorted(set(PLACEHOLDER.findall(text)) - set(values))
    assert not missing, f"{template.name}: no value for {missing}"
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def free_port() -> int:
    sock = free_socket()
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def wait_for(url: str, ca_file: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.time() + 20
    while True:
        status = 0
        try:
            if ca_file.exists():
                status = httpx.get(url, verify=_ca_context(ca_file), timeout=2).status_code
        except httpx.HTTPError:
            pass
        if status == 200:
            return
        if status == 502 or time.time() > deadline or process.poll() is not None:  # 502: nginx is up
            raise RuntimeError(f"{url} did not come up:\n{log.read_text() if log.exists() else ''}")
        time.sleep(0.1)


def _ca_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def stop(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cli(*args: str, config: Path, stdin: str | None = None) -> str:
    result = subprocess.run(
        [*CORRIDOR, *args, "--config", str(config)], input=stdin, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


class NginxDriver(Driver):
    """The test driver, with the RFC 8705 aliases at nginx's mTLS host."""

    def __init__(self, running: RunningAS, alias_base: str) -> None:
        super().__init__(running)
        self.alias_base = alias_base

    def mtls_url(self, path: str) -> str:
        return self.alias_base + path


def authorized(driver: Driver, client: Client, cert: ClientCert) -> Flow:
    """PAR at the alias with the certificate, then login (as the CLI-registered user) and consent."""
    response, flow = par(driver, client, cert)
    assert response.status_code == 201, response.text
    final = driver.authorize(client, flow, username=USERNAME)
    assert final.status_code == 303 and flow.code, final.text
    return flow


@dataclass
class Deployment:
    driver: NginxDriver
    issuer: str  # nginx's issuer host
    alias: str  # nginx's mTLS alias host
    corridor_mtls: str  # Corridor's own mTLS listener, reached directly
    client: Client
    self_signed_client: Client
    self_signed_cert: ClientCert
    corridor_log: Path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, pki: TestPKI) -> Iterator[Deployment]:
    nginx = nginx_binary()
    tmp = tmp_path_factory.mktemp("nginx-deploy")
    data_dir, prefix = tmp / "corridor", tmp / "nginx"
    for sub in ("run", "logs", "temp"):
        (prefix / sub).mkdir(parents=True)
    ports = {name: free_port() for name in ("corridor", "corridor_mtls", "nginx", "nginx_mtls")}
    issuer, alias = f"https://localhost:{ports['nginx']}", f"https://localhost:{ports['nginx_mtls']}"
    tls = DevTLS(
        data_dir / "tls" / "ca.pem", data_dir / "tls" / "server.pem", data_dir / "tls" / "server-key.pem"
    )
    values = {
        # Corridor (corridor.toml, and the upstreams in corridor.conf)
        "AS_ISSUER": issuer,
        "AS_HOST": "127.0.0.1",
        "AS_MTLS_BASE_URL": alias,
        "AS_PORT": str(ports["corridor"]),
        "AS_MTLS_PORT": str(ports["corridor_mtls"]),
        "AS_CLIENT_CA_FILE": str(pki.ca_file),
        "AS_DATA_DIR": str(data_dir),
        # nginx (corridor.conf); it serves Corridor's local certificate for localhost and trusts its CA
        "NGINX_USER": pwd.getpwuid(os.getuid()).pw_name,
        "NGINX_RUN_DIR": str(prefix / "run"),
        "NGINX_LOG_DIR": str(prefix / "logs"),
        "NGINX_TEMP_DIR": str(prefix / "temp"),
        "NGINX_LISTEN": f"127.0.0.1:{ports['nginx']}",
        "NGINX_SERVER_NAME": "localhost",
        "NGINX_MTLS_LISTEN": f"127.0.0.1:{ports['nginx_mtls']}",
        "NGINX_MTLS_SERVER_NAME": "localhost",
        "NGINX_TLS_CERT": str(tls.cert_file),
        "NGINX_TLS_KEY": str(tls.key_file),
        "NGINX_PROXY_ADDRESS": PROXY_ADDRESS,
        "AS_TLS_CA": str(tls.ca_file),
        "AS_TLS_NAME": "localhost",
    }
    config = tmp / "corridor.toml"
    config.write_text(render(DEPLOY / "corridor.toml", values))
    nginx_conf = prefix / "nginx.conf"
    nginx_conf.write_text(render(DEPLOY / "corridor.conf", values))

    corridor_log = tmp / "corridor.log"
    with corridor_log.open("wb") as out:
        corridor = subprocess.Popen([*CORRIDOR, "serve", "--config", str(config)], stdout=out, stderr=out)
    error_log = prefix / "logs" / "error.log"
    nginx_process: subprocess.Popen[bytes] | None = None
    store: Store | None = None
    try:
        # Corridor creates its local CA and certificate on first start; nginx reuses them.
        wait_for(f"https://localhost:{ports['corridor']}/jwks", tls.ca_file, corridor, corridor_log)
        nginx_args = [nginx, "-p", str(prefix), "-c", str(nginx_conf), "-e", str(error_log)]
        checked = subprocess.run([*nginx_args, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        with error_log.open("ab") as out:
            nginx_process = subprocess.Popen([*nginx_args, "-g", "daemon off;"], stdout=out, stderr=out)
        wait_for(issuer + "/jwks", tls.ca_file, nginx_process, error_log)

        # Registration with the CLI, as an operator would.
        client_id = cli(
            "client", "add", "--name", "nginx PKI client", "--redirect-uri", REDIRECT_URI,
            "--auth-method", "tls_client_auth", "--tls-client-auth-subject-dn", PKI_DN,
            "--sender-constraint", "mtls", "--scope", "openid accounts", config=config,
        )  # fmt: skip
        self_signed = pki.self_signed("CN=nginx self-signed client")
        self_signed_id = cli(
            "client", "add", "--name", "nginx self-signed client", "--redirect-uri", REDIRECT_URI,
            "--auth-method", "self_signed_tls_client_auth", "--certificate", str(self_signed.cert_file),
            "--sender-constraint", "mtls", "--scope", "openid accounts", config=config,
        )  # fmt: skip
        cli("user", "add", USERNAME, "--password-stdin", config=config, stdin=PASSWORD + "\n")

        store = Store(f"sqlite:///{data_dir / 'corridor.db'}")
        running = RunningAS(issuer, tls, MovableClock(), store, None, data_dir, base_url=issuer)
        driver = NginxDriver(running, alias)
        unused = SigningKey.generate("ES256")  # tls_client_auth: no client assertion, no DPoP
        yield Deployment(
            driver=driver,
            issuer=issuer,
            alias=alias,
            corridor_mtls=f"https://localhost:{ports['corridor_mtls']}",
            client=Client(client_id, unused, unused, REDIRECT_URI),
            self_signed_client=Client(self_signed_id, unused, unused, REDIRECT_URI),
            self_signed_cert=self_signed,
            corridor_log=corridor_log,
        )
        driver.http.close()
    finally:
        if nginx_process is not None:
            stop(nginx_process, signal.SIGTERM)
        stop(corridor, signal.SIGINT)
        if store is not None:
            store.close()
    output = corridor_log.read_text()
    assert "Traceback" not in output, output
    # No upstream TLS failure, refused proxy_bind or the like (a refused client handshake is "info").
    problems = re.findall(r".*\[(?:error|crit|alert|emerg)\].*", error_log.read_text())
    assert not problems, "\n".join(problems)


def test_metadata_through_nginx_names_nginx(deployment: Deployment) -> None:
    """Issuer and aliases are nginx's URLs; HSTS is sent once, by nginx."""
    response = deployment.driver.http.get(deployment.issuer + "/.well-known/openid-configuration")
    assert response.status_code == 200, response.text
    assert response.headers.get_list("strict-transport-security") == [
        "max-age=63072000; includeSubDomains; preload"
    ]
    meta = response.json()
    assert meta["issuer"] == deployment.issuer
    assert meta["mtls_endpoint_aliases"]["token_endpoint"] == deployment.alias + "/token"
    assert meta["mtls_endpoint_aliases"]["pushed_authorization_request_endpoint"] == deployment.alias + "/par"


def test_full_tls_client_auth_flow_through_nginx(deployment: Deployment, pki: TestPKI) -> None:
    """PAR at nginx's alias with the certificate, login and consent at nginx's issuer host, token
    and userinfo at the alias: the token is bound to the certificate nginx forwarded."""
    driver, client = deployment.driver, deployment.client
    cert = pki.issue(PKI_DN)
    flow = authorized(driver, client, cert)
    assert flow.callback["iss"] == deployment.issuer
    response = token(driver, client, cert, code_form(client, flow))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    claims = decode_jwt(body["access_token"])[1]
    assert claims["cnf"] == {"x5t#S256": cert.thumbprint}
    assert claims["iss"] == deployment.issuer

    me = userinfo(driver, cert, body["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == decode_jwt(body["id_token"])[1]["sub"]
    other = userinfo(driver, pki.issue(PKI_DN), body["access_token"])  # same DN, another key
    assert other.status_code == 401
    assert other.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert userinfo(driver, None, body["access_token"]).status_code == 401

    refreshed = token(
        driver, client, cert, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert decode_jwt(refreshed.json()["access_token"])[1]["cnf"] == {"x5t#S256": cert.thumbprint}


def test_corridor_decides_what_nginx_collected(deployment: Deployment, pki: TestPKI) -> None:
    """optional_no_ca: nginx lets every certificate through the handshake; Corridor checks the
    chain (tls_client_auth) or the exact registered certificate (self-signed)."""
    driver = deployment.driver
    impostor = pki.self_signed(PKI_DN)  # the registered DN, but not from the client CA
    assert_invalid_client(par(driver, deployment.client, impostor)[0])
    assert_invalid_client(par(driver, deployment.client, pki.issue("CN=someone else,O=Test"))[0])

    client, cert = deployment.self_signed_client, deployment.self_signed_cert
    flow = authorized(driver, client, cert)
    response = token(driver, client, cert, code_form(client, flow))
    assert response.status_code == 200, response.text
    assert decode_jwt(response.json()["access_token"])[1]["cnf"] == {"x5t#S256": cert.thumbprint}
    assert_invalid_client(par(driver, client, pki.self_signed("CN=nginx self-signed client"))[0])


@pytest.mark.parametrize("header", ["Client-Cert", "X-SSL-Client-Escaped-Cert"])
def test_forged_header_straight_to_corridor_is_ignored(
    deployment: Deployment, pki: TestPKI, header: str
) -> None:
    """A local process that bypasses nginx (127.0.0.1, not a trusted proxy) cannot claim a certificate."""
    cert = pki.issue(PKI_DN)
    value = cert.header_value() if header == "Client-Cert" else quote(cert.cert_file.read_text())
    warning = "ignored a client-certificate header from untrusted 127.0.0.1"
    before = deployment.corridor_log.read_text().count(warning)
    url = deployment.corridor_mtls + "/par"
    response, _ = par(deployment.driver, deployment.client, None, url=url, headers={header: value})
    assert_invalid_client(response)
    assert deployment.corridor_log.read_text().count(warning) == before + 1


@pytest.mark.parametrize("header", ["Client-Cert", "X-SSL-Client-Escaped-Cert"])
@pytest.mark.parametrize("host", ["alias", "issuer"])
def test_forged_header_through_nginx_is_cleared(
    deployment: Deployment, pki: TestPKI, header: str, host: str
) -> None:
    """A client that shows no certificate but sends the header itself: nginx replaces or removes it
    (RFC 9700 4.13) on both hosts, so Corridor, which trusts nginx, sees no certificate."""
    cert = pki.issue(PKI_DN)
    value = cert.header_value() if header == "Client-Cert" else quote(cert.cert_file.read_text())
    base = deployment.alias if host == "alias" else deployment.issuer
    response, _ = par(deployment.driver, deployment.client, None, url=base + "/par", headers={header: value})
    assert_invalid_client(response)
    # Positive control: the same client with the certificate itself at the alias.
    assert par(deployment.driver, deployment.client, cert)[0].status_code == 201


def test_alias_host_serves_only_the_aliases(deployment: Deployment) -> None:
    """RFC 8705 5: browsers never meet the certificate-requesting host; nginx answers 404 there."""
    with deployment.driver.mtls_http() as session:
        for path in ("/authorize", "/.well-known/openid-configuration", "/jwks"):
            response = session.get(deployment.alias + path)
            assert response.status_code == 404, path
            assert response.headers["strict-transport-security"].startswith("max-age=63072000")


def handshake(port: int, context: ssl.SSLContext) -> tuple[str | None, str]:
    """TLS version and cipher suite nginx agrees to with this client context."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return tls.version(), cipher[0]


def test_tls_policy_at_nginx(deployment: Deployment) -> None:
    """BCP 195 on both hosts: TLS 1.3 when offered; on TLS 1.2 ECDHE with AEAD only, no CBC;
    nothing below TLS 1.2 (this client can speak TLS 1.1: it is nginx that refuses)."""
    ca = str(deployment.driver.as_.tls.ca_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ssl.TLSVersion.TLSv1_1
        tls11 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls11.check_hostname, tls11.verify_mode = False, ssl.CERT_NONE
        tls11.minimum_version = tls11.maximum_version = ssl.TLSVersion.TLSv1_1
        tls11.set_ciphers("ALL:@SECLEVEL=0")
    for base in (deployment.issuer, deployment.alias):
        port = int(base.rsplit(":", 1)[1])
        assert handshake(port, ssl.create_default_context(cafile=ca))[0] == "TLSv1.3"
        tls12 = ssl.create_default_context(cafile=ca)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        version, cipher = handshake(port, tls12)
        assert (
            version == "TLSv1.2" and cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA" in cipher)
        )
        cbc_only = ssl.create_default_context(cafile=ca)
        cbc_only.maximum_version = ssl.TLSVersion.TLSv1_2
        cbc_only.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384")
        for refused in (cbc_only, tls11):
            with pytest.raises(ssl.SSLError):
                handshake(port, refused)
