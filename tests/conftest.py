from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from corridor.server.tls import DevTLS
from tests.pki import TestPKI
from tests.support import RESOURCE, Driver, RunningAS, dev_tls, running_as


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> DevTLS:
    return dev_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def as_server(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, pki: TestPKI) -> Iterator[RunningAS]:
    data_dir = tmp_path_factory.mktemp("as")
    with running_as(data_dir, tls, mtls_ca_file=str(pki.ca_file)) as running:
        running.store.add_resource_server(RESOURCE, "Test API", ["accounts", "payments"], None, 0.0)
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
