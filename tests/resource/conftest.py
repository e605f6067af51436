"""The protected test API, trusting the test AS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from corridor.resource.guard import ResourceSettings
from corridor.transport.tls import DevTLS
from tests.pki import TestPKI
from tests.resource.api import PUBLIC_URL, RunningRS, running_api
from tests.support import RESOURCE, RunningAS


@pytest.fixture(scope="module")
def rs(as_server: RunningAS, tls: DevTLS, pki: TestPKI) -> Iterator[RunningRS]:
    settings = ResourceSettings(
        resource=RESOURCE,
        authorization_servers=(as_server.issuer,),
        public_url=PUBLIC_URL,  # as if behind a proxy: htu is the external URL, not the socket
        resource_name="Test payments API",
        scopes_supported=("accounts", "payments"),
        authorization_details_types=("payment_initiation",),
        ca_file=str(tls.ca_file),
    )
    with running_api(settings, tls, pki.ca_file, clock=as_server.clock) as running:
        yield running
