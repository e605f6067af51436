"""Dev and production modes (issue 18): dev mode only when asked (``--dev``, ``dev_mode``) or
for a loopback issuer without a config file; production mode has no demo objects and no local
CA (unless behind a TLS proxy on this host), refuses to start in one line when TLS is missing,
and the banner says which mode and why. Through the real ``corridor serve`` process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from corridor.server.settings import Settings, is_loopback_url
from corridor.store.sql import Store
from tests.pki import TestPKI
from tests.test_cli_front_door import free_port, one_line_error, served
from tests.test_serve import CORRIDOR

PUBLIC = "https://as.example.com"
#: Every interface, as issue 18 judges it (the listener of a public server).
ALL = "0.0.0.0"  # noqa: S104
SERVER_AUTH = (x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,)
DEMO_FILES = ("demo-client-key.json", "demo-user-password.txt")


def refused(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [
            *CORRIDOR,
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(free_port()),
            "--mtls-port",
            str(free_port()),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    line = one_line_error(result, "production mode", "tls_cert_file and tls_key_file", "--dev")
    assert result.returncode == 1
    assert not data_dir.exists(), "a refused start created the data directory"
    return line


# -- which mode, and why ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "issuer,loopback",
    [
        ("https://localhost:8443", True),
        ("https://127.0.0.1", True),
        ("https://127.8.9.10:9000", True),
        ("https://[::1]:8443", True),
        ("https://LOCALHOST:8443", True),
        (PUBLIC, False),
        ("https://localhost.example.com", False),
        ("https://128.0.0.1", False),
        ("https://[::2]", False),
    ],
)
def test_dev_mode_is_implied_only_for_a_loopback_issuer(issuer: str, loopback: bool) -> None:
    assert is_loopback_url(issuer) is loopback
    settings = Settings(issuer=issuer)
    assert settings.dev_mode is loopback
    assert settings.self_service_enrolment is loopback and settings.admin_require_mfa is not loopback
    word = "is a loopback URL and no config file is given" if loopback else "is not a loopback URL"
    assert settings.mode_reason == f"issuer {issuer} {word}"


def test_a_config_file_means_production_unless_dev_mode_is_set(tmp_path: Path) -> None:
    config = tmp_path / "corridor.toml"
    config.write_text('issuer = "https://localhost:8443"\n')
    settings = Settings.load(config)
    assert settings.dev_mode is False and settings.admin_require_mfa is True
    assert settings.mode_reason == f"a config file is given: {config}"
    assert Settings.load(config, dev_mode=True).dev_mode is True
    config.write_text('issuer = "https://as.example.com"\ndev_mode = true\n')
    settings = Settings.load(config)
    assert settings.dev_mode is True and settings.mode_reason == "dev_mode = true"
    assert Settings(dev_mode=False).mode_reason == "dev_mode = false"


def test_proxy_mode_needs_trusted_proxies_and_loopback_listeners() -> None:
    assert Settings(issuer=PUBLIC, trusted_proxies=["127.0.0.2"]).proxy_mode is True
    assert Settings(issuer=PUBLIC).proxy_mode is False
    assert Settings(issuer=PUBLIC, trusted_proxies=["10.0.0.1"], host=ALL).proxy_mode is False
    assert Settings(issuer=PUBLIC, trusted_proxies=["10.0.0.1"], mtls_host="10.0.0.5").proxy_mode is False


# -- production mode refuses without TLS, in one line, before creating anything ---------------


def test_a_public_issuer_without_tls_is_refused(tmp_path: Path) -> None:
    """issue 18, as judged: ``--issuer https://as.example.com --host 0.0.0.0`` and no TLS material."""
    line = refused(tmp_path / "data", "--issuer", PUBLIC, "--host", ALL)
    assert line.startswith(f"Error: production mode (issuer {PUBLIC} is not a loopback URL) needs TLS")


def test_a_config_file_without_tls_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "corridor.toml"
    config.write_text('issuer = "https://localhost:8443"\n')
    line = refused(tmp_path / "data", "--config", str(config))
    assert f"(a config file is given: {config}) needs TLS" in line


def test_dev_mode_false_without_tls_is_refused(tmp_path: Path) -> None:
    line = refused(tmp_path / "data", env={"CORRIDOR_DEV_MODE": "false"})
    assert "production mode (dev_mode = false)" in line


def test_trusted_proxies_with_a_public_listener_is_refused(tmp_path: Path) -> None:
    """Proxy mode only when nothing but this host reaches the listeners: the local CA names localhost."""
    refused(
        tmp_path / "data",
        "--issuer",
        PUBLIC,
        "--host",
        ALL,
        env={"CORRIDOR_TRUSTED_PROXIES": '["127.0.0.2"]'},
    )


# -- production mode starts with TLS, and makes no demo objects ------------------------------


def assert_no_demo_objects(data_dir: Path, database_url: str) -> None:
    store = Store(database_url)
    try:
        assert store.users.all() == [] and store.clients.all() == []
        assert store.clients.resource_servers() == []
    finally:
        store.close()
    for name in DEMO_FILES:
        assert not (data_dir / name).exists(), name


def test_production_with_tls_creates_no_demo_objects(tmp_path: Path, pki: TestPKI, database: str) -> None:
    """issue 18, as judged: with a certificate and key it starts, in production mode, on either
    database, and creates no demo user, client, resource server or files, and no local CA."""
    cert = pki.issue("CN=as.example.com", dns="as.example.com", ip="127.0.0.1", eku=SERVER_AUTH)
    env = {
        **os.environ,
        "CORRIDOR_TLS_CERT_FILE": str(cert.cert_file),
        "CORRIDOR_TLS_KEY_FILE": str(cert.key_file),
    }
    data_dir = tmp_path / "data"
    args = ("--issuer", PUBLIC, "--host", ALL, "--database", database)
    with served(data_dir, *args, env=env, ca=pki.ca_file) as running:
        pass
    text = running.output
    assert f"  mode:        production (issuer {PUBLIC} is not a loopback URL)\n" in text, text
    assert "demo" not in text and "CA file" not in text
    assert_no_demo_objects(data_dir, database)
    assert not (data_dir / "tls").exists()


def test_proxy_mode_keeps_the_local_ca_for_the_proxy_hop(tmp_path: Path) -> None:
    """deploy/nginx: trusted_proxies and loopback listeners: production without a certificate;
    the local CA (for nginx's hop) and no demo objects."""
    data_dir = tmp_path / "data"
    env = {**os.environ, "CORRIDOR_TRUSTED_PROXIES": '["127.0.0.2"]'}
    with served(data_dir, "--issuer", PUBLIC, env=env) as running:
        pass
    text = running.output
    assert f"  mode:        production (issuer {PUBLIC} is not a loopback URL); TLS at the proxy" in text
    assert (data_dir / "tls" / "ca.pem").exists()
    assert_no_demo_objects(data_dir, f"sqlite:///{data_dir / 'corridor.db'}")


def test_dev_flag_with_a_public_issuer(tmp_path: Path) -> None:
    """``--dev`` asks for dev mode whatever the issuer, and the banner says so."""
    data_dir = tmp_path / "data"
    with served(data_dir, "--issuer", PUBLIC, "--dev") as running:
        pass
    text = running.output
    assert "  mode:        dev (--dev): demo user, demo client and a local CA; never for real users\n" in text
    for name in DEMO_FILES:
        assert (data_dir / name).exists()
