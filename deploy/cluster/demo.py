"""Corridor scale-out on this machine: N identical instances behind nginx, on one PostgreSQL.

    .venv/bin/python deploy/cluster/demo.py            # start, print what runs, wait for Ctrl-C
    .venv/bin/python deploy/cluster/demo.py --check    # start, check once, stop; exit 0 or 1
    make cluster-demo                                  # the same; CLUSTER_ARGS=--check for the check

It creates a fresh database (CREATE DATABASE corridor_demo_<random>, through --postgres), a
certificate for localhost and 127.0.0.1 with its CA, renders deploy/cluster/corridor.toml once per
instance and deploy/cluster/nginx.conf.template once (the documented files, no second copy), runs
`corridor db upgrade`, registers a client, a user and a resource server with the CLI, starts the
instances and nginx (-g 'daemon off;', everything in a temporary directory) and waits until
the metadata answers through nginx. On Ctrl-C or SIGTERM it stops everything, drops the database
and removes the directory (unless --keep).

--check runs instead: metadata through nginx 2N times (and which instance answered, from
nginx's log and from each instance's own), a private_key_jwt + DPoP flow and a
self_signed_tls_client_auth flow with corridor.client, forged certificate headers (refused
through nginx and straight at an instance), examples/fapi_flow.py as printed, a key rotation
seen by every instance, a database that refuses connections for a moment (503 with
Retry-After, then recovery), and clean logs. Exit status 0 only when every step passed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import getpass
import html
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urljoin

import httpx
import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from psycopg import sql
from sqlalchemy.engine import make_url

from corridor.client.flow import FapiClient
from corridor.core.b64 import b64url_decode
from corridor.core.jose import SigningKey, read_header, verify_with_keys
from corridor.core.pkce import new_verifier, s256_challenge
from corridor.core.x509 import thumbprint_s256
from corridor.transport.tls import ensure_dev_tls

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CORRIDOR = [sys.executable, "-m", "corridor.cli"]
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
CLIENT_ID = "cluster-demo-client"
REDIRECT_URI = "http://127.0.0.1:8765/callback"  # what `corridor login` listens on
USERNAME = "demo"
RESOURCE = "https://api.example.com"
METADATA = "/.well-known/openid-configuration"
#: nginx's access log (log_format corridor_cluster): request, status and the instance(s) that answered.
NGINX_LINE = re.compile(
    r'"(?P<method>\S+) (?P<path>\S+)" (?P<status>\d{3}) .*? upstream=(?P<upstream>[^ ,]+(?:, [^ ,]+)*) '
)
#: Corridor's access log (corridor.server.app): method, path and status of every response, as a
#: text line (log_format = "text") or as one JSON object (log_format = "json", the default of
#: the instances here: they run with a config file, so in production mode).
INSTANCE_LINE = re.compile(r"corridor\.access: (?P<method>\S+) (?P<path>\S+) (?P<status>\d{3})")


def access_line(line: str) -> tuple[str, str, str] | None:
    """Method, path and status of one access-log line of an instance, in either log format."""
    if line.startswith("{"):
        try:
            fields = json.loads(line)
        except ValueError:
            return None
        if not isinstance(fields, dict) or fields.get("logger") != "corridor.access":
            return None
        return str(fields.get("method")), str(fields.get("path")), str(fields.get("status"))
    match = INSTANCE_LINE.search(line)
    return None if match is None else (match["method"], match["path"], match["status"])
#: The lines of nginx.conf.template that must stay as in deploy/nginx/corridor.conf.
TLS_POLICY = re.compile(
    r"^\s*(ssl_\w+|proxy_ssl_\w+|proxy_hide_header|add_header|underscores_in_headers|ignore_invalid_headers)\b"
)


class Failed(Exception):
    """A step of the demo or of the check did not go as it should."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise Failed(message)


def render(template: Path, values: dict[str, str]) -> str:
    """Fill the upper-case ${...} placeholders of a deploy template (what envsubst does)."""
    text = template.read_text()
    missing = sorted(set(PLACEHOLDER.findall(text)) - set(values))
    expect(not missing, f"{template.name}: no value for {missing}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def free_ports(count: int) -> list[int]:
    """Ports that are free now (all held open together, so no two are the same)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text) or "    (empty)"


def decode_jwt(token: str) -> dict[str, Any]:
    """Claims of a JWS, for inspection (signatures are verified separately)."""
    claims: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return claims


@dataclass
class Instance:
    name: str
    port: int
    mtls_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / "corridor.toml"

    @property
    def log(self) -> Path:
        return self.directory / "corridor.log"

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


@dataclass
class Cluster:
    """Everything the demo starts, in the order it is stopped: nginx, instances, database, files."""

    args: argparse.Namespace
    tmp: Path
    instances: list[Instance] = field(default_factory=list)
    nginx: subprocess.Popen[bytes] | None = None
    database: str = ""
    database_url: str = ""
    issuer: str = ""
    mtls_base: str = ""
    password_file: Path = Path()
    client_key: Path = Path()
    files: list[IO[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        #: One certificate for localhost and 127.0.0.1 with its CA: nginx's and every instance's.
        self.tls = ensure_dev_tls(self.tmp / "tls")

    # -- paths --------------------------------------------------------------------------------

    @property
    def nginx_dir(self) -> Path:
        return self.tmp / "nginx"

    @property
    def nginx_conf(self) -> Path:
        return self.nginx_dir / "nginx.conf"

    @property
    def nginx_error_log(self) -> Path:
        return self.nginx_dir / "logs" / "error.log"

    @property
    def nginx_access_log(self) -> Path:
        return self.nginx_dir / "logs" / "access.log"

    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls.ca_file))

    def cli(self, *args: str, stdin: str | None = None, config: bool = True) -> str:
        """A corridor command against the shared database, as an operator runs it (--config)."""
        command = [*CORRIDOR, *args, *(["--config", str(self.instances[0].config)] if config else [])]
        result = subprocess.run(  # noqa: S603 (our own interpreter and arguments)
            command, input=stdin, capture_output=True, text=True, timeout=120, env=child_env()
        )
        if result.returncode != 0:
            raise Failed(f"corridor {' '.join(args)} failed:\n{result.stderr.strip()}")
        return result.stdout.strip()

    # -- start ----------------------------------------------------------------------------------

    def create_database(self) -> None:
        name = f"corridor_demo_{secrets.token_hex(4)}"
        with psycopg.connect(self.args.postgres, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.database = name  # from here on, stop() drops it
        url = make_url(self.args.postgres).set(database=self.database)
        self.database_url = url.render_as_string(hide_password=False)

    def render_configs(self) -> None:
        count = self.args.instances
        ports = free_ports(2 * count + 2)
        nginx_port, nginx_mtls_port = ports[-2:]
        self.issuer = f"https://localhost:{nginx_port}"
        self.mtls_base = f"https://localhost:{nginx_mtls_port}"
        self.instances = [
            Instance(f"instance-{i + 1}", ports[2 * i], ports[2 * i + 1], self.tmp / f"instance-{i + 1}")
            for i in range(count)
        ]
        tls = self.tls
        for sub in ("run", "logs", "temp"):
            (self.nginx_dir / sub).mkdir(parents=True, exist_ok=True)
        values = {
            # corridor.toml: the same for every instance ...
            "AS_ISSUER": self.issuer,
            "AS_MTLS_BASE_URL": self.mtls_base,
            "AS_DATABASE_URL": self.database_url,
            "AS_CLIENT_CA_FILE": "",
            "AS_TLS_CERT": str(tls.cert_file),
            "AS_TLS_KEY": str(tls.key_file),
            "AS_HOST": "127.0.0.1",
            # nginx.conf.template; nginx shows the same localhost certificate and trusts its CA
            "NGINX_USER": pwd.getpwuid(os.getuid()).pw_name,
            "NGINX_RUN_DIR": str(self.nginx_dir / "run"),
            "NGINX_LOG_DIR": str(self.nginx_dir / "logs"),
            "NGINX_ERROR_LOG": "stderr",  # nginx's stderr goes to logs/error.log (start_nginx)
            "NGINX_TEMP_DIR": str(self.nginx_dir / "temp"),
            "NGINX_LISTEN": f"127.0.0.1:{nginx_port}",
            "NGINX_SERVER_NAME": "localhost",
            "NGINX_MTLS_LISTEN": f"127.0.0.1:{nginx_mtls_port}",
            "NGINX_MTLS_SERVER_NAME": "localhost",
            "NGINX_TLS_CERT": str(tls.cert_file),
            "NGINX_TLS_KEY": str(tls.key_file),
            "NGINX_PROXY_ADDRESS": self.args.proxy_address,
            "AS_SERVERS": " ".join(f"server 127.0.0.1:{i.port};" for i in self.instances),
            "AS_MTLS_SERVERS": " ".join(f"server 127.0.0.1:{i.mtls_port};" for i in self.instances),
            "AS_TLS_CA": str(tls.ca_file),
            "AS_TLS_NAME": "localhost",
        }
        for instance in self.instances:
            # ... and per instance: on one host the ports and data_dir differ (across hosts, AS_HOST).
            instance.directory.mkdir()
            own = {
                "AS_PORT": str(instance.port),
                "AS_MTLS_PORT": str(instance.mtls_port),
                "AS_DATA_DIR": str(instance.directory / "data"),
            }
            instance.config.write_text(render(HERE / "corridor.toml", {**values, **own}))
        self.nginx_conf.write_text(render(HERE / "nginx.conf.template", values))

    def register(self) -> None:
        """Schema first, then a resource server, a client with its key, and a user: all with the CLI."""
        print(f"  {self.cli('db', 'upgrade')}")
        self.cli("resource", "add", RESOURCE, "--name", "Example API", "--scope", "accounts payments")
        self.client_key = self.tmp / "client-key.json"
        public = self.cli("client", "keygen", str(self.client_key), config=False).splitlines()[-1]
        self.cli(
            "client", "add", "--name", "Cluster demo client", "--client-id", CLIENT_ID,
            "--redirect-uri", REDIRECT_URI, "--jwks-file", public,
            "--scope", "openid profile accounts payments",
        )  # fmt: skip
        password = secrets.token_urlsafe(12)
        self.password_file = self.tmp / "demo-user-password.txt"
        self.password_file.touch(mode=0o600)
        self.password_file.write_text(password + "\n")
        self.cli("user", "add", USERNAME, "--password-stdin", stdin=password + "\n")

    def start_instances(self) -> None:
        for instance in self.instances:
            out = instance.log.open("wb")
            self.files.append(out)
            instance.process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
                [*CORRIDOR, "serve", "--config", str(instance.config)],
                stdout=out,
                stderr=out,
                env=child_env(),
                start_new_session=True,  # Ctrl-C reaches the demo only; it stops them in order
            )
        for instance in self.instances:
            assert instance.process is not None
            self.wait_for(instance.url + METADATA, instance.process, instance.log)

    def start_nginx(self) -> None:
        nginx = self.args.nginx
        expect(nginx and os.access(nginx, os.X_OK), "nginx not found (Debian: apt-get install nginx)")
        command = [nginx, "-p", str(self.nginx_dir), "-c", str(self.nginx_conf), "-e", "stderr"]
        checked = subprocess.run(  # noqa: S603 (nginx with our generated configuration)
            [*command, "-t"], capture_output=True, text=True, timeout=30
        )
        expect(checked.returncode == 0, f"nginx -t refused the configuration:\n{checked.stderr}")
        out = self.nginx_error_log.open("ab")
        self.files.append(out)
        self.nginx = subprocess.Popen(  # noqa: S603 (nginx with our generated configuration)
            [*command, "-g", "daemon off;"], stdout=out, stderr=out, start_new_session=True
        )
        self.wait_for(self.issuer + METADATA, self.nginx, self.nginx_error_log)

    def wait_for(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        deadline = time.monotonic() + 30
        while True:
            status = 0
            with contextlib.suppress(httpx.HTTPError):
                status = httpx.get(url, verify=self.verify(), timeout=2).status_code
            if status == 200:
                return
            if process.poll() is not None or time.monotonic() > deadline:
                raise Failed(f"{url} did not come up (last status {status}); {log}:\n{tail(log)}")
            time.sleep(0.2)

    def stopped(self) -> list[str]:
        """Names of the processes that have stopped although nobody asked them to."""
        processes = [("nginx", self.nginx)] + [(i.name, i.process) for i in self.instances]
        return [name for name, process in processes if process is not None and process.poll() is not None]

    # -- stop -------------------------------------------------------------------------------------

    def stop(self) -> None:
        if self.nginx is not None:
            stop_process(self.nginx)
        processes = [i.process for i in self.instances if i.process is not None]
        for process in processes:  # all at once, then wait for each
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            stop_process(process)
        for out in self.files:
            out.close()
        if self.database:
            try:
                with psycopg.connect(self.args.postgres, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(self.database)
                        )
                    )
                print(f"dropped database {self.database}")
            except psycopg.Error as exc:
                print(f"could not drop database {self.database}: {exc}", file=sys.stderr)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def child_env() -> dict[str, str]:
    """Our environment without CORRIDOR_* (those would override the rendered configuration)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CORRIDOR_")}


def display(path: Path | str) -> str:
    """A path as a person types it: relative to the current directory when inside it."""
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- what the demo prints ----------------------------------------------------------------------------


def commands(cluster: Cluster) -> dict[str, str]:
    python, ca = display(sys.executable), display(cluster.tls.ca_file)
    script = Path(sys.executable).with_name("corridor")  # the venv's entry point, when there is one
    corridor = display(script) if script.exists() else f"{python} -m corridor.cli"
    return {
        "curl": f"curl --cacert {ca} {cluster.issuer}{METADATA}",
        "fapi_flow": (
            f"{python} {display(REPO / 'examples' / 'fapi_flow.py')} --issuer {cluster.issuer} "
            f"--client-id {CLIENT_ID} --key {display(cluster.client_key)} --ca {ca} "
            f"--redirect-uri {REDIRECT_URI} --username {USERNAME} "
            f"--password-file {display(cluster.password_file)}"
        ),
        "login": (
            f"{corridor} login --issuer {cluster.issuer} --client-id {CLIENT_ID} "
            f"--key {display(cluster.client_key)} --ca {ca} --scope 'openid accounts' --resource {RESOURCE}"
        ),
        "rotate": f"{corridor} keys rotate --config {display(cluster.instances[0].config)}",
    }


def banner(cluster: Cluster) -> str:
    shown = make_url(cluster.database_url).render_as_string(hide_password=True)
    lines = [
        f"Corridor scale-out demo: {len(cluster.instances)} instances behind nginx, one PostgreSQL",
        f"  issuer:      {cluster.issuer}   (nginx; every instance has this issuer)",
        f"  mTLS host:   {cluster.mtls_base}   (nginx, ssl_verify_client optional_no_ca)",
    ]
    for n, instance in enumerate(cluster.instances):
        label = "instances:" if n == 0 else ""
        lines.append(
            f"  {label:<12} {instance.url} (mTLS :{instance.mtls_port})  log {display(instance.log)}"
        )
    lines += [
        f"  nginx:       {display(cluster.nginx_conf)}; access log (upstream= is the instance) "
        f"{display(cluster.nginx_access_log)}",
        f"  database:    {shown}   (dropped on exit)",
        f"  CA file:     {display(cluster.tls.ca_file)}",
        f"  client:      {CLIENT_ID} (private_key_jwt + DPoP), key {display(cluster.client_key)},",
        f"               redirect URI {REDIRECT_URI}",
        f"  user:        {USERNAME} / password in {display(cluster.password_file)}",
        f"  resource:    {RESOURCE} (scopes accounts payments)",
        f"  CLI config:  {display(cluster.instances[0].config)}   (corridor ... --config FILE)",
    ]
    return "\n".join(lines)


def instructions(cluster: Cluster) -> str:
    run = commands(cluster)
    return "\n".join(
        [
            "Try it (from this directory):",
            f"  {run['curl']}",
            "  # a full flow (PAR, login and consent filled in by the script, token, UserInfo):",
            f"  {run['fapi_flow']}",
            "  # the same with your browser (it must trust the CA file):",
            f"  {run['login']}",
            "  # a signing-key rotation: every instance publishes the new key at once",
            f"  {run['rotate']}",
            "Ctrl-C (or SIGTERM) stops everything and drops the database.",
        ]
    )


# -- the check -----------------------------------------------------------------------------------------


class Logs:
    """What nginx and each instance logged since a mark (byte offsets)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.by_port: dict[int, str] = {}
        self.offsets: dict[Path, int] = {}
        for instance in cluster.instances:
            self.by_port[instance.port] = self.by_port[instance.mtls_port] = instance.name
        self.mark()

    def mark(self) -> None:
        paths = [self.cluster.nginx_access_log, *(i.log for i in self.cluster.instances)]
        self.offsets = {path: path.stat().st_size if path.exists() else 0 for path in paths}

    def new(self, path: Path) -> list[str]:
        with path.open("rb") as log:
            log.seek(self.offsets[path])
            return log.read().decode(errors="replace").splitlines()

    def nginx(self, expected: int = 0) -> list[tuple[str, str, str, str]]:
        """(method, path, status, instance) per request; nginx logs after answering, so wait a little."""
        deadline = time.monotonic() + 3
        while True:
            rows = []
            for line in self.new(self.cluster.nginx_access_log):
                match = NGINX_LINE.search(line)
                if match:
                    ports = [a.rsplit(":", 1)[-1] for a in match["upstream"].split(", ")]
                    where = " then ".join(
                        self.by_port.get(int(p), "nginx") if p.isdigit() else "nginx" for p in ports
                    )
                    rows.append((match["method"], match["path"], match["status"], where))
            if len(rows) >= expected or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    def instance(self, instance: Instance) -> list[tuple[str, str, str]]:
        return [row for row in map(access_line, self.new(instance.log)) if row is not None]


def browser_sign_in(cluster: Cluster, url: str, password: str) -> str:
    """Play the user on Corridor's login and consent pages (through nginx); the callback URL."""
    with httpx.Client(verify=cluster.verify(), timeout=20) as browser:

        def follow(response: httpx.Response) -> httpx.Response:
            while response.status_code == 303 and not response.headers["location"].startswith(REDIRECT_URI):
                response = browser.get(urljoin(str(response.url), response.headers["location"]))
            return response

        def submit(page: httpx.Response, fields: dict[str, str]) -> httpx.Response:
            action = re.search(r'<form method="post" action="([^"]+)"', page.text)
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            expect(action and csrf, f"no form on {page.url} ({page.status_code})")
            assert action is not None and csrf is not None
            target = urljoin(str(page.url), html.unescape(action.group(1)))
            return follow(browser.post(target, data={"csrf": html.unescape(csrf.group(1)), **fields}))

        page = follow(browser.get(url))
        expect(page.status_code == 200, f"/authorize answered {page.status_code}: {page.text[:200]}")
        if 'name="username"' in page.text:
            page = submit(page, {"username": USERNAME, "password": password})
        final = submit(page, {"decision": "approve"})
        location = final.headers.get("location", "")
        expect(
            final.status_code == 303 and location.startswith(REDIRECT_URI),
            f"no redirect: {final.status_code}",
        )
        return str(location)


def check_tls_policy(cluster: Cluster) -> list[str]:
    """nginx.conf.template keeps deploy/nginx's TLS and header policy (a copy must not drift)."""

    def policy(path: Path) -> list[str]:
        return sorted(line.strip() for line in path.read_text().splitlines() if TLS_POLICY.match(line))

    ours, theirs = policy(HERE / "nginx.conf.template"), policy(REPO / "deploy" / "nginx" / "corridor.conf")
    expect(ours == theirs, f"differs from deploy/nginx/corridor.conf: {set(ours) ^ set(theirs)}")
    return [f"{len(ours)} ssl_/proxy_ssl_/header lines identical to deploy/nginx/corridor.conf"]


def check_round_robin(cluster: Cluster, logs: Logs) -> list[str]:
    count = 2 * len(cluster.instances)
    with httpx.Client(verify=cluster.verify(), timeout=10) as http:
        direct = {i.name: http.get(i.url + METADATA).json() for i in cluster.instances}
        logs.mark()
        answers = [http.get(cluster.issuer + METADATA) for _ in range(count)]
    for answer in answers:
        expect(answer.status_code == 200, f"metadata through nginx: {answer.status_code}")
    meta = answers[0].json()
    expect(meta["issuer"] == cluster.issuer, f"issuer {meta['issuer']} is not nginx's URL")
    aliases = meta.get("mtls_endpoint_aliases", {})
    expect(
        aliases.get("token_endpoint") == cluster.mtls_base + "/token",
        f"mTLS token alias {aliases.get('token_endpoint')} is not at nginx's mTLS host",
    )
    for name, document in direct.items():
        expect(document == meta, f"{name} answers other metadata than nginx does")
    served = [row[3] for row in logs.nginx(count) if row[1] == METADATA]
    own = {i.name: sum(1 for row in logs.instance(i) if row[1] == METADATA) for i in cluster.instances}
    expect(len(served) == count, f"nginx logged {len(served)} of {count} requests")
    expect(
        own == {name: served.count(name) for name in own},
        f"instance logs {own} disagree with nginx's upstream= {served}",
    )
    expect(all(own.values()), f"not every instance answered: {own}")
    return [
        f"{count} GETs through nginx answered by: {', '.join(served)}",
        f"each instance's own access log agrees: {own}",
        f"same metadata from nginx and from each instance directly (issuer {cluster.issuer})",
    ]


def flow_report(cluster: Cluster, logs: Logs) -> tuple[list[str], set[str]]:
    """Which instance answered each request since the mark. Corridor logs before it answers and
    nginx after, so the instances' count says how many lines nginx's log must have."""
    rows = logs.nginx(sum(len(logs.instance(i)) for i in cluster.instances))
    instances = {row[3] for row in rows}
    lines = [f"  {method:<4} {path:<40} {status} <- {where}" for method, path, status, where in rows]
    return lines, instances


def check_dpop_flow(cluster: Cluster, logs: Logs) -> list[str]:
    key = SigningKey(json.loads(cluster.client_key.read_text()))
    client = FapiClient(
        cluster.issuer, CLIENT_ID, redirect_uri=REDIRECT_URI, key=key, ca_file=str(cluster.tls.ca_file)
    )
    logs.mark()
    try:
        url, handle = client.start("openid profile accounts", resource=RESOURCE)
        callback = browser_sign_in(cluster, url, cluster.password_file.read_text().strip())
        tokens = client.finish(callback, handle)  # checks iss and state; validates the ID token
        claims = decode_jwt(tokens.access_token)
        expect(tokens.token_type == "DPoP", f"token_type {tokens.token_type}")
        expect(claims["iss"] == cluster.issuer and claims["aud"] == RESOURCE, f"iss/aud {claims}")
        expect(claims["cnf"] == {"jkt": client.dpop_key.thumbprint()}, f"cnf {claims.get('cnf')}")
        verify_with_keys(
            tokens.access_token, read_header(tokens.access_token), client.server_keys(refresh=True)
        )
        userinfo = client.endpoint("userinfo_endpoint")
        with httpx.Client(verify=cluster.verify(), timeout=10, auth=client.auth(tokens)) as api:
            me = api.get(userinfo)
        expect(me.status_code == 200, f"UserInfo {me.status_code}: {me.text}")
        expect(tokens.id_token_claims and me.json()["sub"] == tokens.id_token_claims["sub"], "UserInfo sub")
        refreshed = client.refresh(tokens)
        expect(refreshed.access_token != tokens.access_token, "refresh gave the same access token")
    finally:
        client.close()
    lines, instances = flow_report(cluster, logs)
    expect(len(instances) >= 2, f"the whole flow went to one instance ({instances}); nothing was shared")
    return [
        "PAR, login, consent, token, UserInfo and refresh through nginx; DPoP-bound token "
        f"(cnf.jkt), aud {RESOURCE}, signature verified with the JWKS; requests:",
        *lines,
    ]


def self_signed_certificate(directory: Path) -> tuple[Path, Path, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster demo mTLS client")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "mtls-client.pem", directory / "mtls-client-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file, certificate


def check_mtls_flow(cluster: Cluster, logs: Logs) -> list[str]:
    cert_file, key_file, certificate = self_signed_certificate(cluster.tmp)
    # Registered while the instances run: an unknown client is never cached, so it counts at once.
    client_id = cluster.cli(
        "client", "add", "--name", "Cluster demo mTLS client", "--redirect-uri", REDIRECT_URI,
        "--auth-method", "self_signed_tls_client_auth", "--certificate", str(cert_file),
        "--sender-constraint", "mtls", "--scope", "openid accounts",
    )  # fmt: skip
    client = FapiClient(
        cluster.issuer,
        client_id,
        redirect_uri=REDIRECT_URI,
        auth_method="self_signed_tls_client_auth",
        sender_constraint="mtls",
        certificate=(str(cert_file), str(key_file)),
        ca_file=str(cluster.tls.ca_file),
    )
    logs.mark()
    try:
        url, handle = client.start("openid accounts")
        expect(client.endpoint("token_endpoint") == cluster.mtls_base + "/token", "not the mTLS alias")
        tokens = client.finish(
            browser_sign_in(cluster, url, cluster.password_file.read_text().strip()), handle
        )
        thumbprint = thumbprint_s256(certificate)
        cnf = decode_jwt(tokens.access_token).get("cnf")
        expect(
            tokens.token_type == "Bearer" and cnf == {"x5t#S256": thumbprint}, f"{tokens.token_type} {cnf}"
        )
        userinfo = client.endpoint("userinfo_endpoint")
        with_cert = client.http.get(userinfo, auth=client.auth(tokens))
        expect(with_cert.status_code == 200, f"UserInfo with the certificate: {with_cert.status_code}")
        with httpx.Client(verify=cluster.verify(), timeout=10) as other:  # no certificate
            without = other.get(userinfo, auth=client.auth(tokens))
        expect(without.status_code == 401, f"UserInfo without the certificate: {without.status_code}")
    finally:
        client.close()
    lines, _ = flow_report(cluster, logs)
    forged = forged_certificate_headers(cluster, client_id, certificate)
    return [
        f"PAR and token at {cluster.mtls_base} with the certificate, login and consent at the issuer; "
        "Bearer token bound to it (cnf.x5t#S256); UserInfo 200 with it, 401 without; requests:",
        *lines,
        forged,
    ]


def forged_certificate_headers(cluster: Cluster, client_id: str, certificate: x509.Certificate) -> str:
    """The same client's PAR without its certificate, claiming it in a header (RFC 9440
    Client-Cert or nginx's X-SSL-Client-Escaped-Cert): nginx clears the header, and an instance
    asked directly from 127.0.0.1 (not its trusted proxy) ignores it. Always invalid_client."""
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    der = certificate.public_bytes(serialization.Encoding.DER)
    claims = {
        "X-SSL-Client-Escaped-Cert": quote(pem.decode()),  # what nginx would send
        "Client-Cert": f":{b64encode(der).decode()}:",  # RFC 9440 2.2
    }
    form = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid accounts",
        "state": secrets.token_urlsafe(16),
        "code_challenge": s256_challenge(new_verifier()),
        "code_challenge_method": "S256",
    }
    instance = cluster.instances[0]
    places = {
        "nginx's mTLS host": cluster.mtls_base + "/par",
        f"{instance.name}'s mTLS listener": f"https://localhost:{instance.mtls_port}/par",
    }
    with httpx.Client(verify=cluster.verify(), timeout=10) as http:  # shows no certificate
        for where, url in places.items():
            for name, value in claims.items():  # one at a time: two headers are never believed
                response = http.post(url, data=form, headers={name: value})
                error = response.json().get("error") if response.content else None
                expect(
                    response.status_code == 401 and error == "invalid_client",
                    f"{name} forged at {where}: {response.status_code} {error}",
                )
    return (
        "the same PAR without the certificate, claiming it in Client-Cert or "
        "X-SSL-Client-Escaped-Cert: 401 invalid_client through nginx and straight at an instance"
    )


def check_example_script(cluster: Cluster, logs: Logs) -> list[str]:
    """examples/fapi_flow.py exactly as the banner prints it (from the repository root)."""
    command = commands(cluster)["fapi_flow"].split()
    result = subprocess.run(  # noqa: S603 (the command the demo prints)
        command, capture_output=True, text=True, timeout=120, env=child_env(), cwd=Path.cwd()
    )
    output = result.stdout + result.stderr
    expect(result.returncode == 0, f"exit status {result.returncode}:\n{output}")
    for needed in ("PAR -> 201", "token -> 200", "userinfo -> 200"):
        expect(needed in output, f"{needed!r} not in its output:\n{output}")
    return ["examples/fapi_flow.py (as printed): PAR -> 201, token -> 200, userinfo -> 200"]


def check_key_rotation(cluster: Cluster, logs: Logs) -> list[str]:
    before = json.loads(cluster.cli("keys", "list", "--json"))
    added = cluster.cli("keys", "rotate")
    kid = added.split()[1]
    states = {key["kid"]: key["state"] for key in json.loads(cluster.cli("keys", "list", "--json"))}
    expect(states.get(kid) == "pending", f"new key {kid} is {states.get(kid)}, not pending")
    with httpx.Client(verify=cluster.verify(), timeout=10) as http:
        for instance in cluster.instances:
            published = {key["kid"] for key in http.get(instance.url + "/jwks").json()["keys"]}
            expect(kid in published, f"{instance.name} does not publish {kid}: {published}")
            expect(
                all(key["kid"] in published for key in before if key["state"] in ("active", "retiring")),
                f"{instance.name} no longer publishes the signing key",
            )
    return [added, f"published by every instance at once (GET /jwks on each); state pending: {states}"]


def check_database_outage(cluster: Cluster, logs: Logs) -> list[str]:
    """Simulated, on the demo's own database only: it refuses connections for a moment."""
    name = sql.Identifier(cluster.database)
    with psycopg.connect(cluster.args.postgres, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(name))
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (cluster.database,),
            )
            with httpx.Client(verify=cluster.verify(), timeout=15) as http:
                down = http.get(cluster.issuer + "/jwks")
                health = http.get(cluster.issuer + METADATA)
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(name))
    expect(down.status_code == 503, f"/jwks during the outage: {down.status_code} {down.text[:200]}")
    expect(down.headers.get("retry-after"), "503 without Retry-After")
    expect(down.json().get("error") == "temporarily_unavailable", f"503 body {down.text}")
    expect(health.status_code == 200, f"metadata during the outage: {health.status_code}")
    started = time.monotonic()
    with httpx.Client(verify=cluster.verify(), timeout=15) as http:
        for instance in cluster.instances:
            while (status := http.get(instance.url + "/jwks").status_code) != 200:
                expect(time.monotonic() - started < 20, f"{instance.name} did not recover: {status}")
                time.sleep(0.5)
    recovered = time.monotonic() - started
    return [
        "connections to the demo database refused and cut (ALTER DATABASE ... ALLOW_CONNECTIONS false, "
        "pg_terminate_backend): GET /jwks through nginx -> 503, "
        f"Retry-After: {down.headers['retry-after']}, {down.json()['error']}; metadata (health check) -> 200",
        f"connections allowed again: every instance answers /jwks 200 after {recovered:.1f} s, no restart",
    ]


def check_logs(cluster: Cluster, before_outage: dict[str, int]) -> list[str]:
    for instance in cluster.instances:
        text = instance.log.read_text(errors="replace")
        expect("unexpected error" not in text, f"{instance.name} answered a 500:\n{tail(instance.log)}")
        early = text.encode()[: before_outage[instance.name]].decode(errors="replace")
        expect("Traceback" not in early, f"{instance.name} logged a traceback:\n{early[-3000:]}")
    problems = re.findall(r".*\[(?:error|crit|alert|emerg)\].*", cluster.nginx_error_log.read_text())
    expect(not problems, "nginx error log:\n" + "\n".join(problems))
    return [
        "no 500 and (before the outage step, whose background retries log theirs) no traceback in any "
        "instance log; no error in nginx's error log"
    ]


def run_check(cluster: Cluster) -> bool:
    logs = Logs(cluster)
    before_outage: dict[str, int] = {}

    def outage(cluster: Cluster, logs: Logs) -> list[str]:
        before_outage.update({i.name: i.log.stat().st_size for i in cluster.instances})
        return check_database_outage(cluster, logs)

    steps: list[tuple[str, Callable[[], list[str]]]] = [
        ("nginx TLS policy as deploy/nginx", lambda: check_tls_policy(cluster)),
        ("metadata through nginx, round-robin", lambda: check_round_robin(cluster, logs)),
        ("private_key_jwt + DPoP flow through nginx", lambda: check_dpop_flow(cluster, logs)),
        ("self_signed_tls_client_auth flow, forged headers", lambda: check_mtls_flow(cluster, logs)),
        ("examples/fapi_flow.py through nginx", lambda: check_example_script(cluster, logs)),
        ("signing-key rotation", lambda: check_key_rotation(cluster, logs)),
        ("database unavailable, then back", lambda: outage(cluster, logs)),
        ("logs", lambda: check_logs(cluster, before_outage)),
    ]
    failed = []
    for name, step in steps:
        try:
            lines = step()
        except Exception as exc:  # every step reports; one failure does not hide the others
            failed.append(name)
            detail = str(exc) if isinstance(exc, Failed) else f"{type(exc).__name__}: {exc}"
            print(f"FAIL {name}\n     {detail}", flush=True)
            continue
        print(f"ok   {name}")
        for line in lines:
            print(f"     {line}")
        sys.stdout.flush()
    gone = cluster.stopped()
    if gone:
        print(f"FAIL processes that stopped on their own: {', '.join(gone)}")
    print(f"\n{len(steps) - len(failed)} of {len(steps)} steps passed" + (", processes died" if gone else ""))
    return not failed and not gone


# -- main ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (and SIGHUP) end the demo like Ctrl-C does."""

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="check once, stop everything, exit 0 or 1")
    parser.add_argument(
        "--instances", type=int, default=3, choices=range(1, 10), metavar="N", help="(default 3)"
    )
    parser.add_argument(
        "--postgres",
        default=f"postgresql://{getpass.getuser()}@127.0.0.1:5432/test",
        help="an existing database to connect to for CREATE/DROP DATABASE (default: %(default)s)",
    )
    parser.add_argument(
        "--proxy-address",
        default="127.0.0.2",
        help="nginx's source address towards the instances, their trusted_proxies (default %(default)s)",
    )
    parser.add_argument(
        "--nginx",
        default=shutil.which("nginx") or "/usr/sbin/nginx",
        help="nginx binary (default %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, configs)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="corridor-cluster-"))
    cluster = Cluster(args, tmp)
    ok = False
    with stop_on_sigterm():
        try:
            print(f"files in {tmp}")
            cluster.create_database()
            print(f"created database {cluster.database}")
            cluster.render_configs()
            cluster.register()
            print(f"registered {RESOURCE}, client {CLIENT_ID}, user {USERNAME}")
            cluster.start_instances()
            cluster.start_nginx()
            print(banner(cluster) + "\n", flush=True)
            if args.check:
                ok = run_check(cluster)
            else:
                print(instructions(cluster), flush=True)
                while not (gone := cluster.stopped()):
                    time.sleep(1)
                print(f"stopped on their own: {', '.join(gone)}", file=sys.stderr)
        except KeyboardInterrupt:
            ok = not args.check  # a requested stop ends the demo normally, but not a check
            print("\nstopping", file=sys.stderr)
        except Failed as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
        except psycopg.Error as exc:
            print(f"FAILED: PostgreSQL ({args.postgres}): {exc}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
            if not ok:
                for log in [*(i.log for i in cluster.instances), cluster.nginx_error_log]:
                    if log.exists():
                        print(f"-- {display(log)} (last lines)\n{tail(log)}", file=sys.stderr)
            cluster.stop()
            if args.keep:
                print(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
