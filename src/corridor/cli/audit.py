"""``corridor audit``: the evidence trail (``audit verify``, ``checkpoint``, ``checkpoints``,
``trace``, ``export``)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from corridor.cli.common import (
    CONFIG,
    DATA_DIR,
    DATABASE,
    JSON,
    echo_json,
    iso_time,
    load_server_keys,
    load_settings,
    migrated_store,
)


@click.group()
def audit() -> None:
    """The evidence trail: verify its hash chains, trace a grant, export it."""


def _audit_store(data_dir: Path | None, config_file: Path | None, database_url: str | None) -> Any:
    settings = load_settings(data_dir, config_file, database_url=database_url)
    return settings, migrated_store(settings)


@audit.command("verify")
@DATA_DIR
@CONFIG
@DATABASE
@JSON
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
    public = [SigningKey(json.loads(row["private_jwk"])).public_jwk for row in store.keys.signing_keys()]
    checkpoints = verify_checkpoints(store, public, exported)
    # With audit_retention_days set, a chain may start after a signed position (issue 13 B4).
    chains = verify(store, signed_positions(checkpoints), settings.audit_retention_days is not None)
    broken = [c for c in chains if not c.intact] + [c for c in checkpoints if c.problem]
    if as_json:
        echo_json({"chains": [vars(c) for c in chains], "checkpoints": [vars(c) for c in checkpoints]})
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

    settings, server_keys = load_server_keys(data_dir, config_file, database_url)
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
    if not rows and not as_json:  # --json is JSON Lines to append elsewhere: nothing is nothing
        click.echo("no checkpoints" + (f" after {after_id}" if after_id else ""))
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
        else:
            click.echo(
                f"checkpoint {row['id']} at {iso_time(row['time'])}: "
                f"{row['writer']} #{row['seq']} {row['hash']}"
            )


@audit.command("trace")
@DATA_DIR
@CONFIG
@DATABASE
@click.argument("ident")
@click.option("--json", "as_json", is_flag=True, help="The records as a JSON array.")
@click.option("--jsonl", is_flag=True, help="One JSON record per line (log pipelines).")
@click.option(
    "--pseudonymous", is_flag=True, help="Show users by their pseudonymous id, not their user name."
)
def audit_trace(
    data_dir: Path | None,
    config_file: Path | None,
    database_url: str | None,
    ident: str,
    as_json: bool,
    jsonl: bool,
    pseudonymous: bool,
) -> None:
    """The story of a grant id, token jti or request id: PAR, consent shown and given, code,
    tokens, and every resource-server decision, in order, in words (issue 16)."""
    from corridor.audit.trace import readable, trace
    from corridor.audit.words import steps, user_names
    from corridor.policy.details import DetailTypes

    settings, store = _audit_store(data_dir, config_file, database_url)
    records = readable(trace(store, ident))
    names = {} if pseudonymous or as_json or jsonl else user_names(store.users, records)
    store.close()
    if not records:
        raise click.ClickException(f"no records for {ident}")
    if as_json:
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
    elif jsonl:
        for record in records:
            click.echo(json.dumps(record, sort_keys=True, ensure_ascii=False))
    else:
        # The words the AS uses for authorization_details, built from the settings as it does.
        try:
            types = DetailTypes.configured(
                settings.authorization_details_types, settings.authorization_details_type_files
            )
        except (ValueError, OSError) as exc:
            click.echo(f"authorization_details shown as JSON: {exc}", err=True)
            describe = None
        else:
            describe = types.describe
        for step in steps(records, describe, names):
            for line in step.lines():
                click.echo(line)


@audit.command("export")
@DATA_DIR
@CONFIG
@DATABASE
def audit_export(data_dir: Path | None, config_file: Path | None, database_url: str | None) -> None:
    """Every record as JSON Lines, in storage order (with its chain fields)."""
    from corridor.audit.trace import readable

    _, store = _audit_store(data_dir, config_file, database_url)
    for record in readable(store.audit.records()):
        click.echo(json.dumps(record, sort_keys=True, ensure_ascii=False))
    store.close()


@audit.command("message")
@click.argument("sha256")
@DATA_DIR
@CONFIG
@DATABASE
@JSON
def audit_message(
    sha256: str, data_dir: Path | None, config_file: Path | None, database_url: str | None, as_json: bool
) -> None:
    """A signed message the trail names by SHA-256 (issue 17: the client's request object at PAR,
    the AS's JARM response), exactly as it was received or sent: the compact JWS, for a dispute."""
    _, store = _audit_store(data_dir, config_file, database_url)
    row = store.messages.get(sha256.strip().lower())
    store.close()
    if row is None:
        raise click.ClickException(f"no signed message with SHA-256 {sha256[:64]!r} is kept")
    if as_json:
        echo_json({name: row[name] for name in ("sha256", "kind", "client_id", "created_at", "jws")})
    else:
        click.echo(row["jws"])


@audit.command("import")
@DATA_DIR
@CONFIG
@DATABASE
@JSON
@click.argument("trail", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def audit_import(
    data_dir: Path | None, config_file: Path | None, database_url: str | None, as_json: bool, trail: Path
) -> None:
    """Add a resource server's exported trail (JSON Lines) to this store, verified first: every
    chain in it intact and continuing what the store holds; nothing is added otherwise (exit 1).
    Then `corridor audit trace GRANT_ID` includes its decisions. Safe to repeat."""
    from corridor.audit.imports import ImportRefused, import_file

    _, store = _audit_store(data_dir, config_file, database_url)
    try:
        result = import_file(store, trail, time.time())
    except ImportRefused as refused:
        store.close()
        raise click.ClickException(f"not imported: {refused}") from None
    store.close()
    if as_json:
        echo_json(
            {
                "file_sha256": result.file_sha256,
                "writers": {
                    writer: {"added": added, "held": held, "from": first, "to": last}
                    for writer, (added, held, first, last) in result.writers.items()
                },
            }
        )
        return
    for writer, (added, held, first, last) in sorted(result.writers.items()):
        click.echo(f"{writer}: records {first}-{last} verified; {added} added, {held} already here")
    click.echo(f"imported {result.added} records from {trail.name} (sha256 {result.file_sha256})")


# -- issue 16: evidence packs -----------------------------------------------------------------------


def _public_keys(store: Any) -> list[dict[str, Any]]:
    """Every signing key the AS ever had, as public JWKs (retired ones sign old checkpoints)."""
    from corridor.core.jose import SigningKey

    return [SigningKey(json.loads(row["private_jwk"])).public_jwk for row in store.keys.signing_keys()]


@audit.command("pack")
@DATA_DIR
@CONFIG
@DATABASE
@click.argument("grant_id")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="Where to write the pack (one JSON document).",
)
@click.option(
    "--checkpoint/--no-checkpoint",
    "sign",
    default=True,
    help="Sign a checkpoint first when some of the grant's records are after the newest one "
    "(the default; --no-checkpoint leaves them in the pack, reported as not proven).",
)
def audit_pack(
    data_dir: Path | None,
    config_file: Path | None,
    database_url: str | None,
    grant_id: str,
    out_file: Path,
    sign: bool,
) -> None:
    """Write the evidence pack of GRANT_ID (issue 16): its records, the hashes linking them to
    signed checkpoints, the checkpoints and the public keys, checkable offline with
    `corridor audit verify-pack`. No other grant's records are in it, only their hashes."""
    from corridor.audit.chain import checkpoint
    from corridor.audit.pack import PackError, grant_records, issuer_of, make_pack, uncovered
    from corridor.audit.verify_pack import verify_pack
    from corridor.core.private_files import write_private

    settings, store = _audit_store(data_dir, config_file, database_url)
    try:
        public = _public_keys(store)
        try:
            issuer = issuer_of(grant_records(store, grant_id), grant_id, settings.issuer)
            if sign and uncovered(store, grant_id, issuer, public):
                _, server_keys = load_server_keys(data_dir, config_file, database_url)
                made = checkpoint(server_keys.store, server_keys.signing, issuer, time.time(), again=True)
                server_keys.store.close()
                for row in made:
                    click.echo(f"signed checkpoint {row['id']} ({row['seq']} writers)")
                public = _public_keys(store)  # the signing key may be new
            pack = make_pack(store, grant_id, issuer, time.time(), public)
        except PackError as exc:
            raise click.ClickException(str(exc)) from exc
    finally:
        store.close()
    write_private(out_file, (json.dumps(pack, indent=1, ensure_ascii=False) + "\n").encode())
    report = verify_pack(pack)
    links = sum(len(items) for items in pack["links"].values())
    click.echo(
        f"wrote {out_file}: {len(pack['records'])} records, {links} links, "
        f"{len(pack['checkpoints'])} checkpoints"
    )
    for line in report.lines()[1:]:
        if not line.startswith("record ") or "proven by checkpoint" not in line:
            click.echo(line)
    # A broken trail, or records left unproven although a checkpoint was to cover them.
    if report.problems or (sign and not report.ok):
        sys.exit(1)


def _jwks(path: Path | None) -> list[dict[str, Any]] | None:
    """The keys of a saved JWKS file (None: no file given)."""
    if path is None:
        return None
    try:
        keys = json.loads(path.read_text(encoding="utf-8")).get("keys")
    except (ValueError, AttributeError) as exc:  # UnicodeDecodeError is a ValueError
        raise click.ClickException(f"{path}: not a JWKS ({exc})") from exc
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise click.ClickException(f'{path}: not a JWKS (an object with a "keys" array)')
    return keys


@audit.command("verify-pack")
@click.argument("pack_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The AS's JWKS as published at its jwks_uri, saved by you: trust these keys, not the pack's.",
)
@click.option(
    "--client-jwks",
    "client_jwks_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The client's public JWKS, saved by you: check its request objects with these keys.",
)
@JSON
def audit_verify_pack(
    pack_file: Path, jwks_file: Path | None, client_jwks_file: Path | None, as_json: bool
) -> None:
    """Check an evidence pack offline (issue 16; no database, no network): each checkpoint's
    signature, each record's hash, the chain from each record to a signed checkpoint, and each
    signed message (issue 17: the client's request object, the AS's JARM response). One line per
    record and message; exit status 1 unless every one is proven."""
    from corridor.audit.verify_pack import PackFormatError, read_pack, verify_pack

    try:
        report = verify_pack(
            read_pack(pack_file.read_text(encoding="utf-8")), _jwks(jwks_file), _jwks(client_jwks_file)
        )
    except (PackFormatError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{pack_file}: {exc}") from exc
    if as_json:
        echo_json(report.as_json())
    else:
        for line in report.lines():
            click.echo(line)
    if not report.ok:
        sys.exit(1)
