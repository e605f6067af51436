# Why over 450 lines: not split yet; issue 15 item 5 turns it into a cli/ package, one
# module per command group (work in progress on branch cli, see wip/issue-15).
"""The ``corridor`` command: the front door (design.md 6)."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from pydantic import ValidationError

from corridor.core.randomness import new_id, new_secret_token

DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default ./.corridor).",
)
CONFIG = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="TOML configuration file.",
)


def _settings(data_dir: Path | None, config_file: Path | None, **overrides: Any) -> Any:
    import tomllib

    from corridor.server.settings import Settings

    try:
        return Settings.load(config_file, data_dir=data_dir, **overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.ClickException(
            f"configuration: {'.'.join(map(str, first['loc']))}: {first['msg']}"
        ) from exc
    except tomllib.TOMLDecodeError as exc:  # issue 13 F1
        raise click.ClickException(f"{config_file}: not valid TOML: {exc}; fix the file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{config_file}: cannot read it: {exc}") from exc


def _database_unavailable(settings: Any, exc: Exception) -> click.ClickException:
    """issue 13 F1: the database does not answer: one line naming it (without its password)."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url).render_as_string(hide_password=True)
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return click.ClickException(
        f"database {url} unavailable: {reason}; is it running? (check database_url / --database)"
    )


def _require_database(settings: Any) -> None:
    """issue 13 F2: only `serve` and `db upgrade` create an installation; every other command
    refuses a data directory (or database URL) that holds no Corridor database."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and not Path(url.database).is_file():
            raise click.ClickException(
                f"no Corridor database at {url.database}: give the right --data-dir (or --database), "
                "or create one with corridor db upgrade"
            )
        return
    from sqlalchemy.exc import DBAPIError

    from corridor.server.settings import open_store
    from corridor.store.migrate import current_revision

    store = open_store(settings)
    try:
        with store.engine.connect():  # current_revision reads a failed connection as "no schema"
            pass
        revision = current_revision(store.engine)
    except DBAPIError as exc:
        raise _database_unavailable(settings, exc) from exc
    finally:
        store.close()
    if revision is None:
        raise click.ClickException(
            f"no Corridor database at {url.render_as_string(hide_password=True)}: "
            "give the right --database, or create one with corridor db upgrade"
        )


def _store(settings: Any, *, create: bool = False) -> Any:
    """The store of these settings, migrated; ``create``: make the data directory and database
    if missing (serve, db upgrade), 0700 and 0600 (design.md 5c)."""
    from sqlalchemy.exc import DBAPIError

    from corridor.core.private_files import private_directory
    from corridor.server.settings import open_store

    if create:
        private_directory(settings.data_dir)
    else:
        _require_database(settings)
    store = open_store(settings)
    try:
        store.migrate()
    except DBAPIError as exc:
        store.close()
        raise _database_unavailable(settings, exc) from exc
    return store


@click.group()
@click.version_option(package_name="corridor")
def main() -> None:
    """Corridor: a FAPI 2.0 authorization server, client and resource server."""


@main.command()
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
def serve(
    data_dir: Path | None,
    config_file: Path | None,
    host: str | None,
    port: int | None,
    issuer: str | None,
    mtls_port: int | None,
    database_url: str | None,
    workers: int,
) -> None:
    """Run the authorization server over HTTPS."""
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
    from sqlalchemy.engine import make_url

    settings = _settings(
        data_dir,
        config_file,
        host=host,
        port=port,
        issuer=issuer,
        mtls_port=mtls_port,
        database_url=database_url,
    )
    store = _store(settings, create=True)
    if settings.tls_cert_file:
        cert, key, ca = settings.tls_cert_file, settings.tls_key_file, None
        _check_tls_files(cert, key)
    else:
        tls = ensure_dev_tls(settings.data_dir / "tls")
        cert, key, ca = str(tls.cert_file), str(tls.key_file), tls.ca_file.resolve()
    if settings.mtls_ca_file and not Path(settings.mtls_ca_file).is_file():
        raise click.ClickException(f"mtls_ca_file: no file {settings.mtls_ca_file}; give a PEM CA bundle")
    # Bound here, before the banner: a port in use is one line (issue 13 F1), and forked
    # workers inherit these sockets.
    main_socket = _listen(settings.host, settings.port, "--port")
    mtls_socket = _listen(settings.mtls_host, settings.mtls_port, "--mtls-port")
    lines = [
        "Corridor FAPI 2.0 authorization server",
        f"  issuer:      {settings.issuer}",
        f"  metadata:    {settings.issuer}/.well-known/openid-configuration",
        f"  listening:   https://{settings.host}:{settings.port}",
        f"  mTLS:        https://{settings.mtls_host}:{settings.mtls_port} (as {settings.mtls_base_url})",
        f"  database:    {make_url(settings.database_url).render_as_string(hide_password=True)}",
    ]
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
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from corridor.server.settings import open_store

    def run_one(main_sockets: Any = None, mtls_sockets: Any = None) -> None:
        server = AuthorizationServer(settings, open_store(settings))
        trust = MtlsTrust(cert, key, settings.mtls_ca_file)
        listeners = Listeners(
            create_app(server), server, server_ssl_context(cert, key), trust, settings.log_level
        )
        run_loop(listeners.serve(main_sockets, mtls_sockets))

    if workers == 1:
        run_one([main_socket], [mtls_socket])
        return
    click.echo(f"  workers:     {workers} processes (pid {os.getpid()} supervises)", err=True)
    sys.exit(run_workers(workers, lambda: run_one([main_socket], [mtls_socket])))


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


# -- the database ----------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The database schema (Alembic migrations shipped with Corridor)."""


@db.command("upgrade")
@DATA_DIR
@CONFIG
@click.option("--database", "database_url", default=None, help="Database URL (default: the settings').")
def db_upgrade(data_dir: Path | None, config_file: Path | None, database_url: str | None) -> None:
    """Apply every pending migration (instances also do this at start, under a lock)."""
    from sqlalchemy.exc import DBAPIError

    from corridor.store.migrate import current_revision

    settings = _settings(data_dir, config_file, database_url=database_url)
    try:
        store = _store(settings, create=True)
    except DBAPIError as exc:
        raise _database_unavailable(settings, exc) from exc
    click.echo(f"database at revision {current_revision(store.engine)}")
    store.close()


# -- signing keys ------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """The AS's signing keys (shared by every instance through the database)."""


def _server_keys(data_dir: Path | None, config_file: Path | None, database_url: str | None) -> Any:
    from corridor.core.clock import SystemClock
    from corridor.server.keys import ServerKeys

    settings = _settings(data_dir, config_file, database_url=database_url)
    server_keys = ServerKeys(
        _store(settings),
        SystemClock(),
        settings.signing_alg,
        keep=settings.access_token_lifetime + settings.max_clock_skew,
    )
    server_keys.reload()
    return settings, server_keys


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


@keys.command("list")
@DATA_DIR
@CONFIG
@click.option("--database", "database_url", default=None, help="Database URL (default: the settings').")
@click.option("--json", "as_json", is_flag=True)
def keys_list(
    data_dir: Path | None, config_file: Path | None, database_url: str | None, as_json: bool
) -> None:
    """Each key with its state: pending, active, retiring or retired."""
    _, server_keys = _server_keys(data_dir, config_file, database_url)
    states = server_keys.states()
    if as_json:
        click.echo(json.dumps([vars(state) for state in states], indent=2))
        return
    width = max([3, *(len(state.kid) for state in states)])
    click.echo(f"{'kid':<{width}} {'alg':<6} {'state':<9} {'activates':<21} retires")
    for state in states:
        click.echo(
            f"{state.kid:<{width}} {state.alg:<6} {state.state:<9} "
            f"{_when(state.activates_at):<21} {_when(state.retires_at)}"
        )


@keys.command("rotate")
@DATA_DIR
@CONFIG
@click.option("--database", "database_url", default=None, help="Database URL (default: the settings').")
@click.option(
    "--activate-in",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds until the new key signs (default: the key_activation_delay setting, 600).",
)
@click.option("--alg", type=click.Choice(["ES256", "PS256", "EdDSA"]), default=None)
def keys_rotate(
    data_dir: Path | None,
    config_file: Path | None,
    database_url: str | None,
    activate_in: float | None,
    alg: str | None,
) -> None:
    """Add a signing key: published by every instance now, signing after the delay."""
    settings, server_keys = _server_keys(data_dir, config_file, database_url)
    delay = settings.key_activation_delay if activate_in is None else activate_in
    state = server_keys.rotate(delay, alg)
    click.echo(f"added {state.kid} ({state.alg}): published now, signs from {_when(state.activates_at)}")


# -- the audit trail ---------------------------------------------------------------------------


@main.group()
def audit() -> None:
    """The evidence trail: verify its hash chains, trace a grant, export it."""


DATABASE = click.option(
    "--database", "database_url", default=None, help="Database URL (default: the settings')."
)


def _audit_store(data_dir: Path | None, config_file: Path | None, database_url: str | None) -> Any:
    settings = _settings(data_dir, config_file, database_url=database_url)
    return settings, _store(settings)


@audit.command("verify")
@DATA_DIR
@CONFIG
@DATABASE
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--checkpoints",
    "exported_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Checkpoints exported with `corridor audit checkpoints --json` (an append-only copy).",
)
def audit_verify(
    data_dir: Path | None,
    config_file: Path | None,
    database_url: str | None,
    as_json: bool,
    exported_file: Path | None,
) -> None:
    """Prove every chain intact, or name its first broken record; check the signed checkpoints
    and that every writer and position they name is still there. Exit status 1 when anything is
    broken."""
    from corridor.audit.chain import signed_positions, verify, verify_checkpoints
    from corridor.core.jose import SigningKey

    settings, store = _audit_store(data_dir, config_file, database_url)
    exported = _exported_checkpoints(exported_file) if exported_file else []
    # Every key the AS ever had, retired ones too: old checkpoints stay verifiable.
    public = [SigningKey(json.loads(row["private_jwk"])).public_jwk for row in store.signing_keys()]
    checkpoints = verify_checkpoints(store, public, exported)
    # With audit_retention_days set, a chain may start after a signed position (issue 13 B4).
    chains = verify(store, signed_positions(checkpoints), settings.audit_retention_days is not None)
    broken = [c for c in chains if not c.intact] + [c for c in checkpoints if c.problem]
    if as_json:
        click.echo(
            json.dumps(
                {"chains": [vars(c) for c in chains], "checkpoints": [vars(c) for c in checkpoints]}, indent=2
            )
        )
    else:
        for c in chains:
            click.echo(c.line())
        for cp in checkpoints:
            click.echo(cp.line())
        if not chains:
            click.echo("no chained records")
    store.close()
    if broken:
        sys.exit(1)


def _exported_checkpoints(path: Path) -> list[dict[str, Any]]:
    """The JSON Lines of `corridor audit checkpoints --json`; a bad line is one clear error."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append(
                {
                    "id": int(row["id"]),
                    "writer": str(row["writer"]),
                    "seq": int(row["seq"]),
                    "hash": str(row["hash"]),
                    "time": float(row["time"]),
                    "jws": str(row["jws"]),
                    "heads": row.get("heads"),
                }
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise click.ClickException(f"{path}:{number}: not an exported checkpoint") from exc
    return rows


@audit.command("checkpoint")
@DATA_DIR
@CONFIG
@DATABASE
def audit_checkpoint(data_dir: Path | None, config_file: Path | None, database_url: str | None) -> None:
    """Sign the heads of every chain with the AS's active key (the AS also does this periodically)."""
    from corridor.audit.chain import checkpoint

    settings, server_keys = _server_keys(data_dir, config_file, database_url)
    made = checkpoint(server_keys.store, server_keys.signing, settings.issuer, time.time())
    if not made:
        click.echo("no chain moved since the last checkpoint")
    for row in made:
        for writer, head in json.loads(row["heads"]).items():
            click.echo(f"signed {writer} #{head['seq']} {head['hash']}")
        click.echo(f"checkpoint {row['id']}: {row['seq']} writers")


@audit.command("checkpoints")
@DATA_DIR
@CONFIG
@DATABASE
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, to append elsewhere.")
@click.option("--after", "after_id", type=int, default=0, help="Only checkpoints with a larger id.")
def audit_checkpoints(
    data_dir: Path | None, config_file: Path | None, database_url: str | None, as_json: bool, after_id: int
) -> None:
    """Every signed checkpoint, oldest first. Append them to a store the database's writers cannot
    rewrite (WORM storage, a separate log) and check against it with `verify --checkpoints`."""
    from corridor.audit.chain import stored_checkpoints

    _, store = _audit_store(data_dir, config_file, database_url)
    rows = [row for row in stored_checkpoints(store) if row["id"] > after_id]
    store.close()
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
        else:
            click.echo(
                f"checkpoint {row['id']} at {_when(row['time'])}: {row['writer']} #{row['seq']} {row['hash']}"
            )


@audit.command("trace")
@DATA_DIR
@CONFIG
@DATABASE
@click.argument("ident")
@click.option("--json", "as_json", is_flag=True, help="The records as a JSON array.")
@click.option("--jsonl", is_flag=True, help="One JSON record per line (log pipelines).")
def audit_trace(
    data_dir: Path | None,
    config_file: Path | None,
    database_url: str | None,
    ident: str,
    as_json: bool,
    jsonl: bool,
) -> None:
    """The story of a grant id, token jti or request id: PAR, consent shown and given, code,
    tokens, and every resource-server decision, in order."""
    from corridor.audit.trace import readable, story_line, trace

    _, store = _audit_store(data_dir, config_file, database_url)
    records = readable(trace(store, ident))
    store.close()
    if not records:
        raise click.ClickException(f"no records for {ident}")
    if as_json:
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
    elif jsonl:
        for record in records:
            click.echo(json.dumps(record, sort_keys=True, ensure_ascii=False))
    else:
        for record in records:
            click.echo(story_line(record))


@audit.command("export")
@DATA_DIR
@CONFIG
@DATABASE
def audit_export(data_dir: Path | None, config_file: Path | None, database_url: str | None) -> None:
    """Every record as JSON Lines, in storage order (with its chain fields)."""
    from corridor.audit.trace import readable

    _, store = _audit_store(data_dir, config_file, database_url)
    for record in readable(store.audit_records()):
        click.echo(json.dumps(record, sort_keys=True, ensure_ascii=False))
    store.close()


# -- the demo API -----------------------------------------------------------------------------


def _example(name: str) -> Any:
    """Import an example package from the source tree (``examples/`` is not installed)."""
    import importlib

    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
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


@main.command("demo-api")
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

    settings = _settings(data_dir, config_file, issuer=issuer)
    try:
        threshold = Decimal(step_up_threshold)
    except InvalidOperation:
        threshold = Decimal("NaN")
    if not threshold.is_finite() or threshold < 0:
        raise click.ClickException("--step-up-threshold must be a non-negative amount, e.g. 500.00")
    if resource is not None and (not resource.startswith("https://") or "#" in resource):
        raise click.ClickException("--resource must be an https URL without fragment (RFC 8707 2)")
    _require_database(settings)
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
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    demo.run(config, echo=lambda line: click.echo(line, err=True))


# -- clients --------------------------------------------------------------------------------


@main.group()
def client() -> None:
    """Register and inspect clients."""


def _client_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"client_id": row["client_id"], "client_name": row["name"], **json.loads(row["metadata"])}


@client.command("add")
@DATA_DIR
@CONFIG
@click.option("--name", required=True, help="Name shown on the consent page.")
@click.option(
    "--redirect-uri", "redirect_uris", multiple=True, required=True, help="Registered redirect URI."
)
@click.option(
    "--jwks-file", type=click.File("r"), default=None, help="Public JWKS (JSON file, or - for stdin)."
)
@click.option("--jwks-uri", default=None, help="https URL of the client's JWKS.")
@click.option(
    "--certificate",
    "certificates",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A client certificate (PEM) to register in the JWKS x5c (self-signed mTLS).",
)
@click.option(
    "--auth-method",
    type=click.Choice(["private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"]),
    default="private_key_jwt",
    show_default=True,
    help="Client authentication (FAPI2 5.3.2.1-6).",
)
@click.option(
    "--tls-client-auth-subject-dn", default=None, help="tls_client_auth: the certificate subject DN."
)
@click.option("--tls-client-auth-san-dns", default=None, help="tls_client_auth: a dNSName SAN.")
@click.option("--tls-client-auth-san-uri", default=None, help="tls_client_auth: a URI SAN.")
@click.option("--tls-client-auth-san-ip", default=None, help="tls_client_auth: an iPAddress SAN.")
@click.option("--tls-client-auth-san-email", default=None, help="tls_client_auth: an rfc822Name SAN.")
@click.option(
    "--sender-constraint",
    type=click.Choice(["dpop", "mtls"]),
    default="dpop",
    show_default=True,
    help="How access tokens are bound (RFC 9449 or RFC 8705 3).",
)
@click.option(
    "--use-mtls-endpoint-aliases", is_flag=True, help="The client calls every endpoint at its mTLS alias."
)
@click.option(
    "--scope", default="openid", show_default=True, help="Space-separated scopes the client may ask for."
)
@click.option("--resource", "resources", multiple=True, help="Resource servers it may use (default: all).")
@click.option("--client-id", default=None, help="Chosen client_id (default: generated).")
@click.option("--json", "as_json", is_flag=True, help="Print the registration as JSON.")
def client_add(
    data_dir: Path | None,
    config_file: Path | None,
    name: str,
    redirect_uris: tuple[str, ...],
    jwks_file: Any,
    jwks_uri: str | None,
    certificates: tuple[str, ...],
    auth_method: str,
    tls_client_auth_subject_dn: str | None,
    tls_client_auth_san_dns: str | None,
    tls_client_auth_san_uri: str | None,
    tls_client_auth_san_ip: str | None,
    tls_client_auth_san_email: str | None,
    sender_constraint: str,
    use_mtls_endpoint_aliases: bool,
    scope: str,
    resources: tuple[str, ...],
    client_id: str | None,
    as_json: bool,
) -> None:
    """Register a client: private_key_jwt or mTLS authentication, DPoP or mTLS-bound tokens."""
    from corridor.server.clients import (
        ClientMetadataError,
        build_client_metadata,
        is_identifier,
        jwk_for_certificate,
    )

    settings = _settings(data_dir, config_file)
    if jwks_file is not None and jwks_uri is not None:
        raise click.ClickException("give --jwks-file or --jwks-uri, not both")
    jwks = None
    if jwks_file is not None:
        try:
            jwks = json.load(jwks_file)
        except ValueError as exc:
            raise click.ClickException("--jwks-file is not JSON") from exc
        if isinstance(jwks, dict) and "kty" in jwks:
            jwks = {"keys": [jwks]}
    if certificates:
        try:
            extra = [jwk_for_certificate(Path(path).read_bytes()) for path in certificates]
        except ClientMetadataError as exc:
            raise click.ClickException(f"--certificate: {exc}") from exc
        jwks = {"keys": [*(jwks or {}).get("keys", []), *extra]}
    subject = {
        "tls_client_auth_subject_dn": tls_client_auth_subject_dn,
        "tls_client_auth_san_dns": tls_client_auth_san_dns,
        "tls_client_auth_san_uri": tls_client_auth_san_uri,
        "tls_client_auth_san_ip": tls_client_auth_san_ip,
        "tls_client_auth_san_email": tls_client_auth_san_email,
    }
    try:
        meta = build_client_metadata(
            redirect_uris=redirect_uris,
            jwks=jwks,
            jwks_uri=jwks_uri,
            scope=scope,
            resources=resources,
            known_scopes=list(settings.scopes),
            token_endpoint_auth_method=auth_method,
            sender_constraint=sender_constraint,
            tls_subject={k: v for k, v in subject.items() if v},
            use_mtls_endpoint_aliases=use_mtls_endpoint_aliases,
        )
    except ClientMetadataError as exc:
        raise click.ClickException(f"{exc.error}: {exc}") from exc
    client_id = client_id or "c-" + new_secret_token()[:22]
    if not is_identifier(client_id):
        raise click.ClickException("client_id must be printable, without spaces, at most 255 characters")
    if re.fullmatch(r"[0-9a-f]{32}", client_id):
        # FAPI2 6.7 (AS36): user subjects are 32 hex digits; a client_id must not look like one.
        raise click.ClickException("client_id must not look like a user identifier (32 hex digits)")
    store = _store(settings)
    if store.get_client(client_id) is not None:
        raise click.ClickException(f"client {client_id!r} already exists")
    unknown = [r for r in resources if r not in {row["identifier"] for row in store.list_resource_servers()}]
    if unknown:
        raise click.ClickException(
            f"unknown resource server(s): {' '.join(unknown)} (see corridor resource add)"
        )
    store.add_client(client_id, name, meta, time.time())
    if as_json:
        click.echo(json.dumps({"client_id": client_id, "client_name": name, **meta}, indent=2))
    else:
        click.echo(client_id)


@client.command("keygen")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--alg", type=click.Choice(["ES256", "PS256", "EdDSA"]), default="ES256", show_default=True)
def client_keygen(out: Path, alg: str) -> None:
    """Make a client signing key: the private JWK goes to OUT (mode 600), the public JWKS to
    OUT's name with .jwks.json, ready for `client add --jwks-file`."""
    from corridor.core.jose import SigningKey

    if out.exists():
        raise click.ClickException(f"{out} exists; not overwriting a key")
    key = SigningKey.generate(alg)
    out.touch(mode=0o600)
    out.write_text(json.dumps(key.private_jwk(), indent=2) + "\n")
    public = out.with_name(out.stem + ".jwks.json")
    public.write_text(json.dumps({"keys": [key.public_jwk]}, indent=2) + "\n")
    click.echo(str(public))


@client.command("list")
@DATA_DIR
@CONFIG
@click.option("--json", "as_json", is_flag=True)
def client_list(data_dir: Path | None, config_file: Path | None, as_json: bool) -> None:
    """List clients."""
    rows = _store(_settings(data_dir, config_file)).list_clients()
    if as_json:
        click.echo(json.dumps([_client_json(r) for r in rows], indent=2))
        return
    for row in rows:
        click.echo(f"{row['client_id']}\t{row['name']}")


@client.command("show")
@DATA_DIR
@CONFIG
@click.argument("client_id")
def client_show(data_dir: Path | None, config_file: Path | None, client_id: str) -> None:
    """Show one client as JSON."""
    row = _store(_settings(data_dir, config_file)).get_client(client_id)
    if row is None:
        raise click.ClickException(f"no client {client_id!r}")
    click.echo(json.dumps(_client_json(row), indent=2))


@client.command("remove")
@DATA_DIR
@CONFIG
@click.argument("client_id")
def client_remove(data_dir: Path | None, config_file: Path | None, client_id: str) -> None:
    """Remove a client and revoke all of its grants and tokens at once."""
    removed = _store(_settings(data_dir, config_file)).remove_client(client_id, time.time())
    if removed is None:
        raise click.ClickException(f"no client {client_id!r}")
    click.echo(
        f"removed {client_id} (revoked {removed.grants} grants, {removed.access_tokens} access tokens)"
    )


# -- users --------------------------------------------------------------------------------------


@main.group()
def user() -> None:
    """Manage end users."""


@user.command("add")
@DATA_DIR
@CONFIG
@click.argument("username")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
def user_add(data_dir: Path | None, config_file: Path | None, username: str, password_stdin: bool) -> None:
    """Add a user (the password is hashed with Argon2id)."""
    from argon2 import PasswordHasher

    password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise click.ClickException("the password must have at least 8 characters")
    typed, username = username, _username(username, new=True)
    store = _store(_settings(data_dir, config_file))
    if store.get_user_by_name(username) is not None:  # the same name after RFC 8265 (issue 13 C6)
        same = "" if typed == username else f" ({typed!r} is {username!r} under RFC 8265 UsernameCaseMapped)"
        raise click.ClickException(f"user {username!r} already exists{same}")
    store.add_user(new_id(), username, PasswordHasher().hash(password), time.time())
    click.echo(f"added {username}")


def _username(name: str, new: bool = False) -> str:
    """The stored form of a user name given on the command line (server/usernames.py)."""
    from corridor.server.usernames import UsernameError, enforce, new_username

    try:
        return new_username(name) if new else enforce(name)
    except UsernameError as exc:
        raise click.ClickException(f"user name {name!r}: {exc}") from exc


@user.command("list")
@DATA_DIR
@CONFIG
@click.option("--json", "as_json", is_flag=True)
def user_list(data_dir: Path | None, config_file: Path | None, as_json: bool) -> None:
    """List users."""
    rows = _store(_settings(data_dir, config_file)).list_users()
    if as_json:
        click.echo(json.dumps([{"sub": r["id"], "username": r["username"]} for r in rows], indent=2))
        return
    for row in rows:
        click.echo(f"{row['username']}\t{row['id']}")


@user.command("totp")
@DATA_DIR
@CONFIG
@click.argument("username")
@click.option("--remove", is_flag=True, help="Remove the user's TOTP second factor.")
def user_totp(data_dir: Path | None, config_file: Path | None, username: str, remove: bool) -> None:
    """Enrol a TOTP second factor (RFC 6238) and print its provisioning URI: scan it with an
    authenticator app. Step-up to acr "mfa" (RFC 9470) asks for a code from it."""
    import pyotp

    username = _username(username)
    settings = _settings(data_dir, config_file)
    store = _store(settings)
    secret = None if remove else pyotp.random_base32()
    if not store.set_totp_secret(username, secret):
        raise click.ClickException(f"no user {username!r}")
    if secret is None:
        click.echo(f"removed the TOTP second factor of {username}")
        return
    issuer = urlsplit(settings.issuer).hostname or "Corridor"
    click.echo(pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=f"Corridor ({issuer})"))


@user.command("enrol")
@DATA_DIR
@CONFIG
@click.argument("username")
def user_enrol(data_dir: Path | None, config_file: Path | None, username: str) -> None:
    """Print a single-use link that lets USERNAME add a passkey (valid 15 minutes by default).

    Outside dev mode a user's first strong factor is bound this way (or with ``user totp``):
    a password alone never adds a passkey. Send the link to the user over a channel you trust;
    they also need the account's password."""
    from corridor.server.enrolment import issue_link
    from corridor.server.passkeys import relying_party

    settings = _settings(data_dir, config_file)
    if relying_party(settings.issuer) is None:
        raise click.ClickException(f"passkeys need an issuer with a host name, not {settings.issuer}")
    store = _store(settings)
    found = store.get_user_by_name(username)
    if found is None:
        raise click.ClickException(f"no user {username!r}")
    link = issue_link(store, settings, found, time.time())
    minutes = settings.enrolment_link_lifetime // 60
    click.echo(link)
    click.echo(f"valid {minutes} minutes, once; {username} also needs the account's password", err=True)


@user.command("passkeys")
@DATA_DIR
@CONFIG
@click.argument("username")
@click.option("--remove", "remove", metavar="CREDENTIAL_ID", help="Remove one passkey (a lost device).")
@click.option("--json", "as_json", is_flag=True)
def user_passkeys(
    data_dir: Path | None, config_file: Path | None, username: str, remove: str | None, as_json: bool
) -> None:
    """List a user's passkeys (WebAuthn credentials), or remove one. A user with a second factor
    adds passkeys from the sign-in pages; the first one comes from ``corridor user enrol``
    (or from the sign-in pages when ``self_service_enrolment`` is on, as in dev mode)."""
    username = _username(username)
    store = _store(_settings(data_dir, config_file))
    user = store.get_user_by_name(username)
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    if remove is not None:
        if not store.remove_passkey(user["id"], remove):
            raise click.ClickException(f"{username} has no passkey {remove!r}")
        click.echo(f"removed passkey {remove} of {username}")
        return
    rows = [
        {
            "credential_id": row["credential_id"],
            "aaguid": row["aaguid"],
            "transports": json.loads(row["transports"]),
            "backed_up": bool(row["backed_up"]),
            "sign_count": row["sign_count"],
            "created_at": row["created_at"],
            "last_used_at": row["last_used_at"],
        }
        for row in store.user_passkeys(user["id"])
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        used = _when(row["last_used_at"]) if row["last_used_at"] else "never used"
        click.echo(f"{row['credential_id']}\tadded {_when(row['created_at'])}\t{used}")


@user.command("remove")
@DATA_DIR
@CONFIG
@click.argument("username")
def user_remove(data_dir: Path | None, config_file: Path | None, username: str) -> None:
    """Remove a user."""
    username = _username(username)
    if not _store(_settings(data_dir, config_file)).remove_user(username):
        raise click.ClickException(f"no user {username!r}")
    click.echo(f"removed {username}")


# -- resource servers ------------------------------------------------------------------------------


@main.group()
def resource() -> None:
    """Register resource servers (RFC 8707 resource identifiers and token audiences)."""


@resource.command("add")
@DATA_DIR
@CONFIG
@click.argument("identifier")
@click.option("--name", required=True)
@click.option("--scope", default="", help="Space-separated scopes this resource server serves.")
@click.option("--introspection-client", default=None, help="client_id the RS uses to call introspection.")
def resource_add(
    data_dir: Path | None,
    config_file: Path | None,
    identifier: str,
    name: str,
    scope: str,
    introspection_client: str | None,
) -> None:
    """Register a resource server by its exact identifier (an https URL)."""
    if not identifier.startswith("https://") or "#" in identifier:
        raise click.ClickException("the identifier must be an https URL without fragment (RFC 8707 2)")
    store = _store(_settings(data_dir, config_file))
    if identifier in {r["identifier"] for r in store.list_resource_servers()}:
        raise click.ClickException(f"resource server {identifier!r} already exists")
    store.add_resource_server(identifier, name, scope.split(), introspection_client, time.time())
    click.echo(identifier)


@resource.command("list")
@DATA_DIR
@CONFIG
def resource_list(data_dir: Path | None, config_file: Path | None) -> None:
    """List resource servers."""
    for row in _store(_settings(data_dir, config_file)).list_resource_servers():
        click.echo(f"{row['identifier']}\t{row['name']}\t{' '.join(json.loads(row['scopes']))}")


@resource.command("remove")
@DATA_DIR
@CONFIG
@click.argument("identifier")
def resource_remove(data_dir: Path | None, config_file: Path | None, identifier: str) -> None:
    """Remove a resource server."""
    if not _store(_settings(data_dir, config_file)).remove_resource_server(identifier):
        raise click.ClickException(f"no resource server {identifier!r}")
    click.echo(f"removed {identifier}")


@main.command()
@click.option("--issuer", required=True, help="The authorization server's issuer identifier.")
@click.option("--client-id", required=True)
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The client's private JWK (JSON).",
)
@click.option("--scope", default="openid", show_default=True)
@click.option("--resource", default=None, help="RFC 8707 resource the token is for.")
@click.option(
    "--port",
    type=int,
    default=8765,
    show_default=True,
    help="Loopback port; the client must have http://127.0.0.1:PORT/callback registered.",
)
@click.option(
    "--ca",
    "ca_file",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="CA file to trust (Corridor dev mode: .corridor/tls/ca.pem).",
)
@click.option(
    "--timeout", type=float, default=300, show_default=True, help="Seconds to wait for the browser."
)
@click.option("--show-tokens", is_flag=True, help="Print the tokens instead of redacting them.")
def login(
    issuer: str,
    client_id: str,
    key_file: str,
    scope: str,
    resource: str | None,
    port: int,
    ca_file: str | None,
    timeout: float,
    show_tokens: bool,
) -> None:
    """Run one FAPI 2.0 flow (PAR, PKCE, private_key_jwt, DPoP) with a loopback callback."""
    from corridor.client.errors import ClientError
    from corridor.client.flow import FapiClient
    from corridor.client.login import LoopbackCallback, redacted, to_json
    from corridor.core.jose import JoseFailure, SigningKey

    try:
        key = SigningKey(json.loads(Path(key_file).read_text()))
    except (ValueError, JoseFailure) as exc:
        raise click.ClickException(f"--key: not a private JWK ({exc})") from exc
    try:
        callback = LoopbackCallback(port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    client = FapiClient(issuer, client_id, redirect_uri=callback.redirect_uri, key=key, ca_file=ca_file)
    try:
        url, handle = client.start(scope, resource=resource)
        click.echo(f"Open this URL in your browser:\n{url}", err=True)
        click.echo(json.dumps({"authorization_url": url}))
        response = callback.wait(timeout)
        if response is None:
            raise click.ClickException("no authorization response arrived in time")
        tokens = client.finish(response, handle)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        client.close()
    click.echo(to_json(redacted(tokens, show_tokens)))


# `corridor check` lives with the checker (design.md 1: check imports client and core only).
from corridor.check.command import check as _check  # noqa: E402

main.add_command(_check)


if __name__ == "__main__":
    main()
