from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from corridor.transport.tls import DevTLS
from tests.cluster.support import Cluster, cluster
from tests.support import postgres_database


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, postgres_admin: str) -> Iterator[Cluster]:
    """Three ``corridor serve`` processes, one PostgreSQL database, one issuer."""
    work: Path = tmp_path_factory.mktemp("cluster")
    with postgres_database(postgres_admin) as url, cluster(work, tls, url) as running:
        yield running
