"""User names in one form (issue 13 C6): RFC 8265 UsernameCaseMapped at creation (`corridor user
add`) and at sign-in (the login form, /admin/login); names that collide after it, or that mix
Latin with Cyrillic or Greek letters, are refused. Both databases: the stored form is the point."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select

from corridor.store import schema as t
from corridor.store.migrate import upgrade
from corridor.store.sql import database_url
from corridor.transport.tls import DevTLS
from tests.support import PASSWORD, Driver, RunningAS, postgres_database, running_as

CORRIDOR = [str(Path(sys.executable).parent / "corridor")]
CYRILLIC_A = "\u0430"  # looks like Latin "a"


@pytest.fixture(params=["sqlite", "postgresql"])
def driver(request: pytest.FixtureRequest, tmp_path: Path, tls: DevTLS) -> Iterator[Driver]:
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'users.db'}"
        else:
            url = stack.enter_context(postgres_database(request.getfixturevalue("postgres_admin")))
        running = stack.enter_context(
            running_as(tmp_path, tls, database_url=url, admin_users=["Admin"], admin_require_mfa=False)
        )
        d = Driver(running)
        yield d
        d.http.close()


def user_add(running: RunningAS, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CORRIDOR, "user", "add", name, "--password-stdin", "--data-dir", str(running.data_dir)],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CORRIDOR_DATABASE_URL": running.store.url},
    )


def stored_names(running: RunningAS) -> list[str]:
    return sorted(row["username"] for row in running.store.users.all())


def test_user_add_stores_the_precis_form_and_refuses_collisions_and_mixed_scripts(driver: Driver) -> None:
    added = user_add(driver.as_, "Admin")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added admin"
    fullwidth = user_add(driver.as_, "\uff41\uff44\uff4d\uff49\uff4e")  # fullwidth "admin"
    assert fullwidth.returncode == 1
    assert "user 'admin' already exists" in fullwidth.stderr and "UsernameCaseMapped" in fullwidth.stderr
    spaced = user_add(driver.as_, "alice ")
    assert spaced.returncode == 1
    assert "not a user name under RFC 8265 UsernameCaseMapped (DISALLOWED/spaces)" in spaced.stderr
    joiner = user_add(driver.as_, "al\u200dice")
    assert joiner.returncode == 1 and "DISALLOWED/zero_width_joiner" in joiner.stderr
    mixed = user_add(driver.as_, CYRILLIC_A + "lice")
    assert mixed.returncode == 1
    assert "mixes Cyrillic and Latin letters" in mixed.stderr
    for result in (fullwidth, spaced, joiner, mixed):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    cyrillic = user_add(driver.as_, "\u0410\u043b\u0438\u0441\u0430")  # "Алиса": one script, accepted
    assert cyrillic.returncode == 0, cyrillic.stderr
    assert stored_names(driver.as_) == ["admin", "\u0430\u043b\u0438\u0441\u0430"]


def sign_in(driver: Driver, username: str) -> tuple[bool, str]:
    """PAR, then the login form over HTTPS with ``username``: (code issued, the user's sub)."""
    client = driver.add_client()
    response, flow = driver.par(client)
    assert response.status_code == 201, response.text
    final = driver.authorize(client, flow, username=username)
    if not flow.code:
        assert final.status_code == 400 and "Wrong user name or password." in final.text
        return False, ""
    tokens = driver.redeem(client, flow)
    assert tokens.status_code == 200, tokens.text
    from tests.support import decode_jwt

    return True, decode_jwt(tokens.json()["access_token"])[1]["sub"]


def test_sign_in_looks_up_the_precis_form(driver: Driver) -> None:
    assert user_add(driver.as_, "Admin").returncode == 0
    admin = driver.as_.store.users.by_name("admin")
    assert admin is not None
    for typed in ("admin", "ADMIN", "\uff21\uff24\uff2d\uff29\uff2e"):  # fullwidth "ADMIN"
        assert sign_in(driver, typed) == (True, admin["id"]), typed
    for typed in ("admin ", CYRILLIC_A + "dmin", "ad\u200dmin"):
        assert sign_in(driver, typed) == (False, ""), typed


def test_admin_login_looks_up_the_precis_form(driver: Driver) -> None:
    """admin_users = ["Admin"] is compared in the enforced form too."""
    assert user_add(driver.as_, "admin").returncode == 0
    browser = driver.browser()
    page = browser.get(driver.url("/admin/trace"))  # the sign-in form
    assert page.status_code == 200 and 'name="username"' in page.text
    signed_in = browser.submit(page, {"username": "\uff21dmin", "password": PASSWORD}, follow=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/admin/trace"
    browser = driver.browser()
    page = browser.get(driver.url("/admin/trace"))
    refused = browser.submit(page, {"username": CYRILLIC_A + "dmin", "password": PASSWORD}, follow=False)
    assert refused.status_code == 400


def test_migration_converts_existing_names_and_leaves_collisions_alone(tmp_path: Path) -> None:
    """Names stored before 0007: converted to the enforced form; one the profile refuses or one that
    would collide is left as it was (and cannot sign in), never merged into another account."""
    engine = create_engine(database_url(f"sqlite:///{tmp_path / 'old.db'}"))
    upgrade(engine, "0005")
    with engine.begin() as conn:
        for n, name in enumerate(["Alice", "\uff21lice", "bob ", "Carol"]):
            conn.execute(insert(t.users).values(id=f"u{n}", username=name, password_hash="x", created_at=0.0))
    upgrade(engine)
    with engine.connect() as conn:
        rows = dict(conn.execute(select(t.users.c.id, t.users.c.username)).all())
    assert rows == {"u0": "alice", "u1": "\uff21lice", "u2": "bob ", "u3": "carol"}
    engine.dispose()
