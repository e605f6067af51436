"""``corridor serve`` (the authorization server over HTTPS) and ``corridor demo-api`` (the demo
payments API protected by corridor.resource)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from corridor.cli.common import CONFIG, DATA_DIR, load_settings, migrated_store, require_database
from corridor.core.logs import configure_logging


@click.command()
@DATA_DIR
@CONFIG
@click.option("--host", default=None, help="Listen address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (default 8443).")
@click.option("--issuer", default=None, help="Issuer URL (default https://localhost:8443).")
@click.option("--mtls-port", type=int, default=None, help="Port of the mTLS listener (default 8445).")
@click.option(
    "--database",
    "database_url",
    default=None,
    help="Database URL (default: SQLite in the data directory), e.g. postgresql://user@host/db.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Worker processes sharing the listeners (each a whole AS on the same database).",
)
@click.option(
    "--dev",
    is_flag=True,
    help="Dev mode: demo user, demo client and a local CA (never for real users). Without it, "
    "dev mode only for a loopback issuer and no --config.",
)
def serve(
    data_dir: Path | None,
    config_file: Path | None,
    host: str | None,
    port: int | None,
    issuer: str | None,
    mtls_port: int | None,
    database_url: str | None,
    workers: int,
    dev: bool,
) -> None:
    """Run the authorization server over HTTPS (production mode unless dev mode applies: --dev)."""
    from corridor.server.app import create_app
    from corridor.server.authority import AuthorizationServer
    from corridor.server.bootstrap import (
        DEMO_CLIENT_ID,
        DEMO_REDIRECT_URI,
        DEMO_RESOURCE,
        DEMO_USER,
        ensure_demo,
    )
    from corridor.server.serve import Listeners
    from corridor.transport.listeners import run_loop, run_workers
    from corridor.transport.tls import ensure_dev_tls, server_ssl_context
    from corridor.transport.trust import MtlsTrust

    if port is not None and issuer is None and config_file is None and not _env_names_issuer():
        issuer = f"https://localhost:{port}"
    from corridor.store.engine import parse_url as make_url

    settings = load_settings(
        data_dir,
        config_file,
        host=host,
        port=port,
        issuer=issuer,
        mtls_port=mtls_port,
        database_url=database_url,
        dev_mode=True if dev else None,
    )
    reason = "--dev" if dev else settings.mode_reason
    # Everything refused is refused here, before anything is created or bound (issue 18).
    own_tls = bool(settings.tls_cert_file or settings.tls_key_file)
    if own_tls:
        _check_tls_files(settings.tls_cert_file, settings.tls_key_file)
    elif not settings.dev_mode and not settings.proxy_mode:
        raise click.ClickException(
            f"production mode ({reason}) needs TLS: set tls_cert_file and tls_key_file (PEM), "
            "or run behind a TLS proxy on this host (trusted_proxies, host and mtls_host on "
            "loopback: deploy/nginx); or pass --dev to try Corridor locally"
        )
    if settings.mtls_ca_file and not Path(settings.mtls_ca_file).is_file():
        raise click.ClickException(f"mtls_ca_file: no file {settings.mtls_ca_file}; give a PEM CA bundle")
    store = migrated_store(settings, create=True)
    if own_tls:
        cert, key, ca = settings.tls_cert_file, settings.tls_key_file, None
    else:
        tls = ensure_dev_tls(settings.data_dir / "tls")
        cert, key, ca = str(tls.cert_file), str(tls.key_file), tls.ca_file.resolve()
    # Bound here, before the banner: a port in use is one line (issue 13 F1), and forked
    # workers inherit these sockets.
    main_socket = _listen(settings.host, settings.port, "--port")
    mtls_socket = _listen(settings.mtls_host, settings.mtls_port, "--mtls-port")
    # Issue 18: per-process metrics, worker i on metrics_port + i (docs/observability.md).
    metrics_sockets = [
        _listen(settings.metrics_host, settings.metrics_port + i, "metrics_port")
        for i in range(workers if settings.metrics_port is not None else 0)
    ]
    lines = [
        "Corridor FAPI 2.0 authorization server",
        _mode_line(settings, reason, own_tls),
        f"  issuer:      {settings.issuer}",
        f"  metadata:    {settings.issuer}/.well-known/openid-configuration",
        f"  listening:   https://{settings.host}:{settings.port}",
        f"  mTLS:        https://{settings.mtls_host}:{settings.mtls_port} (as {settings.mtls_base_url})",
        f"  database:    {make_url(settings.database_url).render_as_string(hide_password=True)}",
    ]
    if settings.metrics_port is not None:
        last = settings.metrics_port + workers - 1
        ports = f"{settings.metrics_port}-{last}" if workers > 1 else str(settings.metrics_port)
        lines.append(f"  metrics:     http://{settings.metrics_host}:{ports}/metrics (plain HTTP)")
    if ca is not None:
        lines.append(f"  CA file:     {ca}   (trust it: curl --cacert, SSL_CERT_FILE, NODE_EXTRA_CA_CERTS)")
    if settings.dev_mode:
        files = ensure_demo(settings, store, time.time())
        lines += [
            f"  demo user:   {DEMO_USER} / password in {files.user_password.resolve()}",
            f"  demo client: {DEMO_CLIENT_ID} (private_key_jwt + DPoP), key in {files.client_key.resolve()},",
            f"               redirect URI {DEMO_REDIRECT_URI}",
            f"  demo API:    {DEMO_RESOURCE} (corridor demo-api; make run starts it)",
        ]
    lines.append(
        "  add a client: corridor client add --name NAME --redirect-uri URI --jwks-file public-jwks.json"
        + (f" --data-dir {data_dir}" if data_dir else "")
    )
    store.close()
    click.echo("\n".join(lines), err=True)
    configure_logging(settings)  # issue 18: text or json, uvicorn's lines too (core/logs.py)
    from corridor.server.settings import open_store

    def run_one(index: int) -> None:
        server = AuthorizationServer(settings, open_store(settings))
        trust = MtlsTrust(cert, key, settings.mtls_ca_file)
        listeners = Listeners(
            create_app(server), server, server_ssl_context(cert, key), trust, settings.log_level
        )
        metrics = metrics_sockets[index : index + 1] or None
        run_loop(listeners.serve([main_socket], [mtls_socket], metrics))

    if workers == 1:
        run_one(0)
        return
    click.echo(f"  workers:     {workers} processes (pid {os.getpid()} supervises)", err=True)
    sys.exit(run_workers(workers, run_one))


def _mode_line(settings: Any, reason: str, own_tls: bool) -> str:
    """issue 18: the banner says which mode and why."""
    if settings.dev_mode:
        made = "demo user and demo client" if own_tls else "demo user, demo client and a local CA"
        return f"  mode:        dev ({reason}): {made}; never for real users"
    line = f"  mode:        production ({reason})"
    if not own_tls:
        line += "; TLS at the proxy (trusted_proxies), the local CA only for its hop to Corridor"
    return line


def _env_names_issuer() -> bool:
    """issue 13 F4: CORRIDOR_ISSUER (any case, as pydantic-settings reads it) names the issuer."""
    return any(name.upper() == "CORRIDOR_ISSUER" for name in os.environ)


def _check_tls_files(cert: str, key: str) -> None:
    """issue 13 F1: a configured certificate or key that is missing or unreadable, named."""
    import ssl

    from corridor.transport.tls import server_ssl_context

    for setting, path in (("tls_cert_file", cert), ("tls_key_file", key)):
        if not path:
            raise click.ClickException(f"{setting} is not set: give tls_cert_file and tls_key_file together")
        if not Path(path).is_file():
            raise click.ClickException(
                f"{setting}: no file {path}; give a PEM file (or neither setting, for dev mode's own CA)"
            )
    try:
        server_ssl_context(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise click.ClickException(
            f"tls_cert_file {cert} with tls_key_file {key}: cannot load: {exc}"
        ) from exc


def _listen(host: str, port: int, option: str) -> Any:
    from corridor.transport.listeners import bind

    try:
        return bind(host, port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            f"(another corridor serve running? stop it or choose another {option})"
        ) from exc


# -- the demo API -----------------------------------------------------------------------------


def _example(name: str) -> Any:
    """Import an example package from the source tree (``examples/`` is not installed)."""
    import importlib

    for base in (Path(__file__).resolve().parents[3], Path.cwd()):
        examples = base / "examples"
        if (examples / name / "__init__.py").is_file():
            if str(examples) not in sys.path:
                sys.path.insert(0, str(examples))
            try:
                return importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name == "fastapi":
                    raise click.ClickException(
                        "the demo API needs FastAPI: pip install -e '.[dev]' (or make run)"
                    ) from exc
                raise
    raise click.ClickException(f"examples/{name} not found: run from a Corridor source checkout")


@click.command("demo-api")
@DATA_DIR
@CONFIG
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address.")
@click.option("--port", type=int, default=8444, show_default=True, help="Listen port.")
@click.option("--issuer", default=None, help="Issuer whose tokens it accepts (default: the AS's issuer).")
@click.option("--resource", default=None, help="Resource identifier (default https://127.0.0.1:PORT).")
@click.option(
    "--step-up-threshold",
    default="500.00",
    show_default=True,
    help="A grant's payments above this amount in all need acr mfa (RFC 9470 step-up).",
)
@click.option(
    "--payments-database",
    default=None,
    help="Where the API keeps payments and what each grant spent (a database URL; "
    "default sqlite:///DATA_DIR/demo-payments.db).",
)
@click.option(
    "--wait-for-issuer",
    type=float,
    default=0.0,
    help="Seconds to wait for the AS to answer before starting (make run starts both).",
)
def demo_api(
    data_dir: Path | None,
    config_file: Path | None,
    host: str,
    port: int,
    issuer: str | None,
    resource: str | None,
    step_up_threshold: str,
    payments_database: str | None,
    wait_for_issuer: float,
) -> None:
    """Run the demo payments API (examples/payments_api) over HTTPS, protected by corridor.resource."""
    from decimal import Decimal, InvalidOperation

    from corridor.transport.listeners import ListenerLimits

    settings = load_settings(data_dir, config_file, issuer=issuer)
    try:
        threshold = Decimal(step_up_threshold)
    except InvalidOperation:
        threshold = Decimal("NaN")
    if not threshold.is_finite() or threshold < 0:
        raise click.ClickException("--step-up-threshold must be a non-negative amount, e.g. 500.00")
    if resource is not None and (not resource.startswith("https://") or "#" in resource):
        raise click.ClickException("--resource must be an https URL without fragment (RFC 8707 2)")
    require_database(settings)
    demo = _example("payments_api")
    # Calls to the AS trust trust_ca_file, else the dev CA (dev TLS), else the system's CAs.
    as_ca = settings.trust_ca_file or ("" if settings.tls_cert_file else None)
    config = demo.DemoConfig(
        issuer=settings.issuer,
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        host=host,
        port=port,
        resource=resource or "",
        as_ca_file=as_ca,
        mtls_ca_file=settings.mtls_ca_file,
        step_up_threshold=threshold,
        payments_database_url=payments_database or "",
        wait_for_issuer=wait_for_issuer,
        limits=ListenerLimits.from_settings(settings),
    )
    configure_logging(settings)  # issue 18: text or json, uvicorn's lines too (core/logs.py)
    demo.run(config, echo=lambda line: click.echo(line, err=True))
