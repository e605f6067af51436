"""The CLI as a user meets it when something is wrong (design.md 6: one clear line and a
non-zero exit, never a traceback), where its files go and how they are protected (design.md 5c:
secrets at rest readable by the service only), and which settings win (issue 13 F1-F4)."""

from __future__ import annotations

import os
import signal
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from corridor.transport.tls import DevTLS
from tests.support import free_socket, running_as
from tests.test_serve import CORRIDOR, corridor

REPO = Path(__file__).resolve().parents[1]


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """design.md 6: a failed command says what is wrong in one line, exits non-zero, no traceback."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def free_port() -> int:
    sock = free_socket()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@dataclass
class Served:
    base: str
    ca: Path
    process: subprocess.Popen[str]
    output: str = ""


@contextmanager
def served(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, ca: Path | None = None
) -> Iterator[Served]:
    """``corridor serve`` in a child process until it answers; its output kept for the test.
    ``ca``: the CA of its certificate (default: the local CA it creates in the data directory)."""
    port, mtls_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            *CORRIDOR,
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--mtls-port",
            str(mtls_port),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    ca = ca or data_dir / "tls" / "ca.pem"
    running = Served(f"https://127.0.0.1:{port}", ca, process)
    try:
        # A deadline in seconds, not a count of polls: under make test's parallel workers the
        # start-up (imports, dev TLS, migrations) can take longer than 150 polls of 0.2 s.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if ca.exists():
                    http = httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=5)
                    with http:
                        if http.get(running.base + "/jwks").status_code == 200:
                            break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("corridor serve did not start")
        if process.poll() is not None:
            raise RuntimeError(f"corridor serve exited: {process.communicate()[0]}")
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            running.output = process.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            running.output = process.communicate()[0]
        assert "Traceback" not in running.output, running.output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- F4: CORRIDOR_ISSUER with --port ------------------------------------------------------------


def test_corridor_issuer_wins_over_the_port_default(tmp_path: Path) -> None:
    """issue 13 F4: with --port and no --issuer, CORRIDOR_ISSUER still names the issuer (the
    https://localhost:PORT default applies only when nothing names one)."""
    port = free_port()
    issuer = f"https://127.0.0.1:{port}"
    env = {**os.environ, "CORRIDOR_ISSUER": issuer}
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [
            *CORRIDOR,
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--mtls-port",
            str(free_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        ca = data_dir / "tls" / "ca.pem"
        meta = None
        for _ in range(150):
            try:
                if ca.exists():
                    verify = ssl.create_default_context(cafile=str(ca))
                    response = httpx.get(issuer + "/.well-known/openid-configuration", verify=verify)
                    meta = response.json()
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.2)
        assert meta is not None
        assert meta["issuer"] == issuer
        assert meta["token_endpoint"] == issuer + "/token"
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=15)


# -- F3: secrets at rest --------------------------------------------------------------------------

#: The files a dev-mode data directory holds secrets in (the database holds the signing keys,
#: TOTP secrets and the admin cookie secret).
SECRET_FILES = (
    "corridor.db",
    "corridor.db-wal",
    "corridor.db-shm",
    "tls/ca-key.pem",
    "tls/server-key.pem",
    "demo-client-key.json",
    "demo-user-password.txt",
)


def test_a_fresh_data_directory_is_readable_by_the_service_only(tmp_path: Path) -> None:
    """issue 13 F3, design.md 5c: the data directory 0700, the database (and its WAL and SHM
    files), the key files and the demo password 0600, whatever the umask."""
    data_dir = tmp_path / "data"
    previous = os.umask(0o022)
    try:
        with served(data_dir) as running:
            assert mode(data_dir) == 0o700
            assert mode(data_dir / "tls") == 0o700
            for name in SECRET_FILES:
                assert mode(data_dir / name) == 0o600, name
    finally:
        os.umask(previous)
    assert "readable by others" not in running.output


def test_loose_existing_files_are_tightened_on_start_with_a_warning(tmp_path: Path) -> None:
    """issue 13 F3: a data directory made before (or loosened since) is tightened at start, and
    each file tightened is named in a warning line."""
    data_dir = tmp_path / "data"
    with served(data_dir):
        pass
    for name in SECRET_FILES:
        if (data_dir / name).exists():
            (data_dir / name).chmod(0o644)
    data_dir.chmod(0o755)
    with served(data_dir) as running:
        assert mode(data_dir) == 0o700
        for name in SECRET_FILES:
            assert mode(data_dir / name) == 0o600, name
    warnings = [line for line in running.output.splitlines() if "readable by others" in line]
    for name in ("", *SECRET_FILES[:1], *SECRET_FILES[3:]):  # WAL and SHM: gone after a clean stop
        path = data_dir / name if name else data_dir
        assert any(
            line.startswith(f"{path} was readable by others (mode 6")
            or line.startswith(f"{path} was readable by others (mode 7")
            for line in warnings
        ), (
            path,
            running.output,
        )


def test_db_upgrade_creates_a_private_database(tmp_path: Path) -> None:
    """issue 13 F3: `corridor db upgrade` on a new data directory: 0700 and 0600 too."""
    data_dir = tmp_path / "data"
    assert corridor("db", "upgrade", data_dir=data_dir).returncode == 0
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "corridor.db") == 0o600


# -- F2: only serve and db upgrade create an installation ----------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["client", "list"],
        ["user", "list"],
        ["resource", "list"],
        ["resource", "add", "https://rs.example/api", "--name", "RS"],
        ["keys", "list"],
        ["audit", "verify"],
        ["audit", "export"],
        ["demo-api"],
    ],
)
def test_commands_refuse_a_data_directory_without_a_database(tmp_path: Path, args: list[str]) -> None:
    """issue 13 F2: a wrong --data-dir is refused in one line, and nothing is created there."""
    data_dir = tmp_path / "nonexistent"
    result = corridor(*args, data_dir=data_dir)
    one_line_error(result, "no Corridor database", "corridor db upgrade")
    assert not data_dir.exists()
    existing = tmp_path / "empty"
    existing.mkdir()
    one_line_error(corridor(*args, data_dir=existing), "no Corridor database")
    assert list(existing.iterdir()) == []


def test_a_postgresql_database_without_the_schema_is_refused(tmp_path: Path, postgres_url: str) -> None:
    """issue 13 F2 on PostgreSQL: an empty database is not made an installation by client list;
    db upgrade makes it one (positive control)."""
    env = {**os.environ, "CORRIDOR_DATABASE_URL": postgres_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*CORRIDOR, *args, "--data-dir", str(tmp_path / "data")]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)

    one_line_error(run("client", "list"), "no Corridor database", "corridor db upgrade")
    assert run("db", "upgrade").returncode == 0
    listed = run("client", "list")
    assert listed.returncode == 0, listed.stderr


def test_after_db_upgrade_the_commands_work(tmp_path: Path) -> None:
    """Positive control for F2: the same commands on a data directory with a database."""
    data_dir = tmp_path / "data"
    assert corridor("db", "upgrade", data_dir=data_dir).returncode == 0
    for args in (["client", "list"], ["user", "list"], ["keys", "list"], ["audit", "verify"]):
        result = corridor(*args, data_dir=data_dir)
        assert result.returncode == 0, result.stderr


# -- F1: one line, not a traceback ---------------------------------------------------------------


def test_serve_twice_says_the_address_is_in_use(tmp_path: Path) -> None:
    """issue 13 F1: a second `corridor serve` on the same ports: one line naming the address."""
    data_dir = tmp_path / "data"
    with served(data_dir) as running:
        port = running.base.rsplit(":", 1)[1]
        result = subprocess.run(
            [
                *CORRIDOR,
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                port,
                "--mtls-port",
                str(free_port()),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        line = one_line_error(result, f"127.0.0.1:{port}", "in use")
        assert "--port" in line


def test_a_toml_syntax_error_is_one_line(tmp_path: Path) -> None:
    """issue 13 F1: a configuration file that is not TOML: its name, the line, one line."""
    config = tmp_path / "corridor.toml"
    config.write_text('issuer = "https://as.example"\nport = = 8443\n')
    result = subprocess.run(
        [*CORRIDOR, "serve", "--data-dir", str(tmp_path / "data"), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    one_line_error(result, str(config), "line 2")


def test_a_missing_tls_certificate_is_named(tmp_path: Path) -> None:
    """issue 13 F1: tls_cert_file naming no file: the setting and the path, one line."""
    missing = tmp_path / "nowhere" / "cert.pem"
    env = {**os.environ, "CORRIDOR_TLS_CERT_FILE": str(missing), "CORRIDOR_TLS_KEY_FILE": str(missing)}
    result = subprocess.run(
        [*CORRIDOR, "serve", "--data-dir", str(tmp_path / "data"), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    one_line_error(result, "tls_cert_file", str(missing))


@pytest.mark.parametrize("args", [["client", "list"], ["keys", "list"], ["serve"], ["audit", "verify"]])
def test_a_database_that_is_down_is_one_line(tmp_path: Path, args: list[str]) -> None:
    """issue 13 F1: PostgreSQL not answering (nothing listens on the port): one line saying so."""
    port = free_port()
    env = {**os.environ, "CORRIDOR_DATABASE_URL": f"postgresql://corridor:secret@127.0.0.1:{port}/corridor"}
    result = subprocess.run(
        [*CORRIDOR, *args, "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    line = one_line_error(result, "database", f"127.0.0.1:{port}", "unavailable", "Connection refused")
    assert "secret" not in line


def test_fapi_flow_without_ca_says_what_to_do(tmp_path: Path, tls: DevTLS) -> None:
    """issue 13 F1: examples/fapi_flow.py against a dev-mode AS without --ca: one line naming --ca."""
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    (tmp_path / "as").mkdir()
    with running_as(tmp_path / "as", tls) as running:
        result = subprocess.run(
            [
                sys.executable,
                str(REPO / "examples" / "fapi_flow.py"),
                "--issuer",
                running.issuer,
                "--client-id",
                "c",
                "--key",
                str(tmp_path / "key.json"),
                "--redirect-uri",
                "https://app.example/cb",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    one_line_error(result, "--ca")
