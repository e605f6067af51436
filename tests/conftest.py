from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from corridor.server import passwords
from corridor.transport.tls import DevTLS
from tests.pki import TestPKI
from tests.support import (
    POSTGRES_ENV,
    RESOURCE,
    Driver,
    RunningAS,
    dev_tls,
    postgres_admin_url,
    postgres_database,
    running_as,
)

#: Argon2id at its cheapest for the tests: the production parameters (server/passwords.py, 64 MiB and
#: three passes, 0.1-0.5 s a hash on the test machine) cost seconds per test that signs in, and are
#: not what those tests check. The code path is the same (hash, verify, rehash when the parameters
#: differ); a test of the parameters themselves is marked ``production_argon2``. A server in
#: another process (``corridor serve``) keeps the production parameters; so does Driver.add_user
#: for it (tests/support.py).
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PRODUCTION_HASHER = passwords._hasher


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", FAST_HASHER)
        yield


@pytest.fixture(autouse=True)
def _production_argon2(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The production Argon2 parameters for a test marked ``production_argon2``."""
    if request.node.get_closest_marker("production_argon2") is not None:
        monkeypatch.setattr(passwords, "_hasher", PRODUCTION_HASHER)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> DevTLS:
    return dev_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    """The administrative PostgreSQL URL (tests/support.py POSTGRES_ENV), or skip."""
    url = postgres_admin_url()
    if url is None:
        reason = f"PostgreSQL half: set {POSTGRES_ENV} (.ci/run does)"
        if os.environ.get("CI"):  # design.md 8: under CI a skipped half is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@pytest.fixture
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test."""
    with postgres_database(postgres_admin) as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The storage under test: every test on ``as_server`` runs on both databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'corridor.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    with postgres_database(admin) as url:
        yield url


@pytest.fixture(scope="module")
def as_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tls: DevTLS,
    pki: TestPKI,
    database: str,
) -> Iterator[RunningAS]:
    """The AS of a test module, with the module's ``AS_SETTINGS`` (a dict) if it has one."""
    data_dir = tmp_path_factory.mktemp("as")
    extra = getattr(request.module, "AS_SETTINGS", {})
    with running_as(data_dir, tls, mtls_ca_file=str(pki.ca_file), database_url=database, **extra) as running:
        running.store.clients.add_resource_server(RESOURCE, "Test API", ["accounts", "payments"], None, 0.0)
        yield running


@pytest.fixture
def driver(as_server: RunningAS) -> Iterator[Driver]:
    start = as_server.clock._offset
    d = Driver(as_server)
    yield d
    # Put the clock back for the next test of the module.
    as_server.clock.advance(start - as_server.clock._offset)
    d.http.close()


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Path:
    return tmp_path
