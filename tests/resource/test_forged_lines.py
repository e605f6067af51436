"""Nobody can forge a line of the evidence trail or the logs (issue 13 E1), on both databases.

A newline in a resource request's path used to be stored raw in the rs.access record (right)
and printed raw by ``corridor audit trace`` (wrong: it started a fake "refused ... POST
/payments" line); newlines and ANSI escapes in a client_id or path reached the AS log raw. The
stored value stays exact; every rendering (the text trace, /admin/trace, log lines) shows control
and bidirectional formatting characters escaped (core/text.py).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from corridor.audit.log import AuditLog
from corridor.audit.sinks import SqlSink
from corridor.core.text import escape_controls, escaping_logger
from corridor.transport.tls import DevTLS
from tests.pki import TestPKI
from tests.resource.api import RunningRS
from tests.resource.test_guard import call, proof
from tests.support import JWT_BEARER, PASSWORD, RESOURCE, Driver, RunningAS, decode_jwt, running_as

ADMIN = "trail-admin"

#: A path that, printed raw, ends the record's line and starts a fake one (and clears the screen).
FORGED = "/accounts\n2026-12-01T00:00:00Z  rs.access refused  POST /payments\x1b[2J\u202e"
#: What a reader sees of it instead.
SHOWN = "/accounts\\x0a2026-12-01T00:00:00Z  rs.access refused  POST /payments\\x1b[2J\\u202e"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def as_server(
    tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, pki: TestPKI, database: str
) -> Iterator[RunningAS]:
    """The shared AS of tests/conftest.py, with an administrator for /admin/trace."""
    data_dir = tmp_path_factory.mktemp("as")
    with running_as(
        data_dir,
        tls,
        mtls_ca_file=str(pki.ca_file),
        database_url=database,
        admin_users=[ADMIN],
        admin_require_mfa=False,  # a password-only admin: this module is about rendering
    ) as running:
        running.store.clients.add_resource_server(RESOURCE, "Test API", ["accounts", "payments"], None, 0.0)
        Driver(running).add_user(ADMIN)
        yield running


def trace_cli(running: RunningAS, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corridor.cli", "audit", "trace", *args, "--database", running.store.url],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def recorded_rs(rs: RunningRS, as_server: RunningAS) -> Any:
    """The test API writing its rs.access records to the AS's database (as a shared trail)."""
    before = rs.guard.audit
    rs.guard.audit = AuditLog(SqlSink(as_server.store), role="rs")
    yield rs
    rs.guard.audit = before


def test_a_forged_path_is_stored_exactly_and_traced_escaped(
    driver: Driver, recorded_rs: RunningRS, as_server: RunningAS
) -> None:
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"scope": "openid accounts", "resource": RESOURCE})
    token = tokens["access_token"]
    jti = decode_jwt(token)[1]["jti"]
    path = quote(FORGED, safe="/")
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof(recorded_rs, client, "GET", FORGED, token)}
    response = call(recorded_rs, "GET", path, headers)
    assert response.status_code < 500, response.text
    records = rs_records(as_server, jti)
    assert len(records) == 1
    assert json.loads(records[0]["detail"])["route"] == FORGED  # stored exactly
    result = trace_cli(as_server, jti)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not RAW.search(result.stdout), result.stdout
    assert [line for line in lines if "rs.access" in line and "POST /payments" in line] == [
        line for line in lines if SHOWN in line
    ]
    assert len([line for line in lines if line.startswith("2026-12-01T00")]) == 0
    assert any(f"GET {SHOWN}" in line for line in lines), result.stdout
    # The evidence page shows the same record escaped too (HTML escaping alone keeps a raw
    # newline and U+202E).
    page = admin_trace(driver, jti)
    assert f"GET {SHOWN.replace('<', '&lt;')}" in page
    assert not RAW.search(page.split('class="timeline"')[1]), page


def rs_records(as_server: RunningAS, jti: str) -> list[dict[str, Any]]:
    """The rs.access records of a token (the API records after its answer is sent: wait for it)."""
    deadline = time.monotonic() + 10
    while True:
        found = [r for r in as_server.store.audit.records(token_jti=jti) if r["event"] == "rs.access"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def admin_trace(driver: Driver, ident: str) -> str:
    http = driver.as_.http(follow_redirects=False)
    with http:
        form = http.get(driver.url("/admin/trace"))
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        signed_in = http.post(
            driver.url("/admin/login"),
            data={"csrf": csrf, "next": "/admin/trace", "username": ADMIN, "password": PASSWORD},
        )
        assert signed_in.status_code == 303, signed_in.text
        page = http.get(driver.url("/admin/trace"), params={"id": ident})
        assert page.status_code == 200 and 'class="timeline"' in page.text, page.text[:300]
        return page.text


def test_as_log_lines_are_escaped(driver: Driver, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13 E1: a path, a client_id and an unverified assertion iss with a newline and ANSI
    escapes: no corridor or uvicorn log line carries them raw; the path shows escaped."""
    caplog.set_level(logging.INFO)
    forged = "/nothing\n2026-12-01 INFO corridor.audit: par accepted\x1b[31m"
    client = driver.add_client()
    assert driver.http.get(driver.url(quote(forged, safe="/"))).status_code == 404
    bad = "c-\n2026 forged\x1b[2J"
    assert driver.http.post(driver.url("/par"), data={"client_id": bad}).status_code == 401
    form = {
        "client_assertion_type": JWT_BEARER,
        "client_assertion": driver.assertion(client, iss=bad, sub=bad),
    }
    assert driver.http.post(driver.url("/par"), data=form).status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("corridor", "uvicorn"))]
    assert lines
    assert not [line for line in lines if RAW.search(line) or "\n" in line], lines
    assert any(f"GET {escape_controls(forged)} 404" in line for line in lines), lines


def test_the_log_filter_escapes_every_argument(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13 E1: the filter itself, on a logger made through core/text.py."""
    log = escaping_logger("corridor.test")
    caplog.set_level(logging.INFO, logger="corridor.test")
    log.info("path=%s client=%s", "/a\nb", "\x1b[31mc\u202e")
    log.info("100%% plain")
    assert [r.getMessage() for r in caplog.records] == [
        "path=/a\\x0ab client=\\x1b[31mc\\u202e",
        "100%% plain",  # no arguments: no %-formatting (as logging itself)
    ]
