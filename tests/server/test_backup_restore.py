"""Issue 18: `corridor db backup FILE` and `db restore FILE`.

SQLite: a backup taken with the online backup API while the AS runs, restored into a fresh data
directory, serves the same clients, keys (the same JWKS) and grants. PostgreSQL: the command
prints the exact pg_dump / pg_restore lines (exit 1), and those lines, run as printed, copy the
database."""

from __future__ import annotations

import json
import shlex
import sqlite3
import stat
import subprocess
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import create_engine

from corridor.cli import main
from corridor.store.migrate import upgrade
from corridor.transport.tls import DevTLS
from tests.server.test_operator_cli import ok, refused
from tests.support import Driver, postgres_database, running_as


def cli(*args: str, database_url: str = "") -> Result:
    return CliRunner().invoke(main, list(args), env={"CORRIDOR_DATABASE_URL": database_url})


def test_backup_restored_into_a_fresh_directory_serves_the_same_clients_and_keys(
    tmp_path: Path, tls: DevTLS
) -> None:
    """A backup taken while the AS runs, after a real flow; restored into a fresh data directory;
    an AS started there publishes the same JWKS, and the restored client completes a full flow
    and refreshes the grant it had before."""
    old_dir, new_dir, backup = tmp_path / "old", tmp_path / "new", tmp_path / "backup.db"
    old_dir.mkdir(mode=0o700)
    with running_as(old_dir, tls) as running:
        driver = Driver(running)
        client = driver.add_client()
        _, before = driver.full_flow(client)
        jwks = driver.http.get(driver.url("/jwks")).json()
        shown = json.loads(ok(cli("db", "backup", str(backup), "--data-dir", str(old_dir), "--json")))
        assert shown["revision"] and shown["file"] == str(backup)
        assert "tls" not in " ".join(shown["also_copy"])  # this AS's TLS files live outside its data dir
        refused(cli("db", "backup", str(backup), "--data-dir", str(old_dir)), "exists; give --force")
        ok(cli("db", "backup", str(backup), "--data-dir", str(old_dir), "--force"))
        driver.http.close()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600

    restored = json.loads(ok(cli("db", "restore", str(backup), "--data-dir", str(new_dir), "--json")))
    database = new_dir / "corridor.db"
    assert restored["database"] == str(database.resolve()) or restored["database"] == str(database)
    assert stat.S_IMODE(database.stat().st_mode) == 0o600 and stat.S_IMODE(new_dir.stat().st_mode) == 0o700
    refused(cli("db", "restore", str(backup), "--data-dir", str(new_dir)), "already exists", "--force")

    with running_as(new_dir, tls) as running:
        driver = Driver(running)
        assert driver.http.get(driver.url("/jwks")).json() == jwks
        _, tokens = driver.full_flow(client)
        assert driver.introspect(client, tokens["access_token"]).json()["active"] is True
        response = driver.token_request(
            client, {"grant_type": "refresh_token", "refresh_token": before["refresh_token"]}
        )
        assert response.status_code == 200, response.text
        driver.http.close()


def test_restore_checks_the_file_and_migrates_it_forward(tmp_path: Path) -> None:
    """Only a Corridor SQLite database at a revision this version knows is restored, and it is
    migrated to the current revision; --force replaces an existing database."""
    old = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{old}")
    upgrade(engine, "0008")
    engine.dispose()
    head = ok(cli("db", "upgrade", "--data-dir", str(tmp_path / "head"))).split()[-1]
    target = str(tmp_path / "data")
    out = json.loads(ok(cli("db", "restore", str(old), "--data-dir", target, "--json")))
    assert out["from_revision"] == "0008" and out["revision"] == head
    assert ok(cli("db", "restore", str(old), "--data-dir", target, "--force")).startswith("restored ")

    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    refused(cli("db", "restore", str(text), "--data-dir", str(tmp_path / "t")), "not a SQLite database")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    refused(cli("db", "restore", str(other), "--data-dir", str(tmp_path / "o")), "not a Corridor database")
    newer = tmp_path / "newer.db"
    newer.write_bytes(old.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    refused(cli("db", "restore", str(newer), "--data-dir", str(tmp_path / "n")), "revision 9999")
    for directory in ("t", "o", "n"):
        assert not (tmp_path / directory / "corridor.db").exists()
    refused(
        cli("db", "backup", str(tmp_path / "b.db"), "--data-dir", str(tmp_path / "none")),
        "no Corridor database",
    )
    nowhere = tmp_path / "missing" / "b.db"
    refused(cli("db", "backup", str(nowhere), "--data-dir", str(tmp_path / "head")), "cannot write")


def test_postgresql_backup_prints_the_pg_dump_way_and_it_works(tmp_path: Path, postgres_admin: str) -> None:
    """PostgreSQL is not copied by Corridor: `db backup` and `db restore` exit 1 with the exact
    commands, and those commands, run as printed, carry the clients and keys to a new database."""
    dump = tmp_path / "corridor.dump"
    data = ("--data-dir", str(tmp_path / "data"))  # no ./.corridor made where the test runs
    with postgres_database(postgres_admin) as source, postgres_database(postgres_admin) as copy:
        ok(cli("db", "upgrade", *data, database_url=source))
        ok(cli("client", "keygen", str(tmp_path / "k.json")))
        ok(
            cli(
                "client",
                "add",
                "--name",
                "Kept",
                "--redirect-uri",
                "https://c.example/cb",
                "--jwks-file",
                str(tmp_path / "k.jwks.json"),
                *data,
                database_url=source,
            )
        )
        line = refused(cli("db", "backup", str(dump), *data, database_url=source), "pg_dump --format=custom")
        backup_command = line.split("run: ", 1)[1].split("; to restore: ")[0]
        subprocess.run(shlex.split(backup_command), check=True, timeout=60)
        restore_line = refused(cli("db", "restore", str(dump), *data, database_url=copy), "pg_restore")
        restore_command = restore_line.split("to restore: ", 1)[1].split(", then ")[0]
        subprocess.run(shlex.split(restore_command), check=True, timeout=60)
        ok(cli("db", "upgrade", *data, database_url=copy))
        assert json.loads(ok(cli("client", "list", "--json", *data, database_url=copy))) == json.loads(
            ok(cli("client", "list", "--json", *data, database_url=source))
        )
