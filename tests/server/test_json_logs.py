"""Issue 18 structured logs: a real ``corridor serve`` process with ``log_format = "json"`` runs a
full flow (and refusals, a wrong password, a forged path); every line it logs is one JSON object
(uvicorn's too), the access lines carry the fields and the request id of the audit records, and
no token, code, assertion, DPoP proof, request_uri or password it saw appears anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from corridor.core.clock import MovableClock
from corridor.core.rules import Rule
from corridor.store.sql import Store
from corridor.transport.tls import DevTLS
from tests.cluster.support import ISSUER, start_instance, stop_instance
from tests.support import PASSWORD, Driver, RunningAS, free_socket

WRONG_PASSWORD = "a wrong password, logged nowhere"


class RecordingDriver(Driver):
    """The test driver, remembering every client assertion and DPoP proof it made."""

    sent: list[str]

    def assertion(self, *args: Any, **kwargs: Any) -> str:
        value = super().assertion(*args, **kwargs)
        self.sent.append(value)
        return value

    def proof(self, *args: Any, **kwargs: Any) -> str:
        value = super().proof(*args, **kwargs)
        self.sent.append(value)
        return value


def test_json_logs_of_a_full_flow(tmp_path: Path, tls: DevTLS) -> None:
    database = f"sqlite:///{tmp_path / 'corridor.db'}"
    store = Store(database)
    store.migrate()
    metrics_port = free_socket().getsockname()[1]
    instance = start_instance(
        "as", tmp_path, tls, database, log_format="json", log_level="debug", metrics_port=str(metrics_port)
    )
    try:
        running = RunningAS(ISSUER, tls, MovableClock(), store, None, tmp_path, base_url=instance.base_url)
        driver = RecordingDriver(running)
        driver.sent = []
        client = driver.add_client()
        flow, tokens = driver.full_flow(client)
        reused = driver.redeem(client, flow)  # a refusal with a rule
        assert reused.status_code == 400
        _, pushed = driver.par(client)
        browser = driver.browser()
        page = browser.get(
            driver.url("/authorize"),
            params={"client_id": client.client_id, "request_uri": pushed.request_uri},
        )
        assert (
            browser.submit(page, {"username": driver.add_user(), "password": WRONG_PASSWORD}).status_code
            == 400
        )
        forged = '/nothing\n{"level": "forged"}\u202e'
        assert driver.http.get(driver.url(quote(forged, safe="/"))).status_code == 404
        scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert (
            'corridor_tokens_issued_total{grant_type="authorization_code",sender_constraint="dpop"} 1.0'
            in (scrape.text)
        )
    finally:
        output = stop_instance(instance)
    records = store.audit.records()
    store.close()

    lines = output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))
    # What the command says before it serves (the banner), then JSON only.
    assert any(line.startswith("Corridor FAPI 2.0 authorization server") for line in lines[:first])
    # Every line one object, nothing raw; click's own "Aborted!" on SIGINT is not a log line.
    logged = [json.loads(line) for line in lines[first:] if line not in ("", "Aborted!")]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in logged)
    assert any(entry["logger"].startswith("uvicorn") for entry in logged), "uvicorn's lines go through it"
    access = [entry for entry in logged if entry["logger"] == "corridor.access"]

    (token,) = [a for a in access if a["path"] == "/token" and a["status"] == 200]
    (issued,) = [r for r in records if r["event"] == "token.authorization_code"]
    assert token["request_id"] == issued["request_id"]  # the same id as the evidence record
    assert token["method"] == "POST" and token["client_id"] == client.client_id
    assert token["client_address"] == "127.0.0.1" and token["latency_ms"] > 0
    assert token["endpoint"] == "/token" and token["rule"] is None
    (refused,) = [a for a in access if a["path"] == "/token" and a["status"] == 400]
    assert refused["rule"] == Rule.FAPI2_5_3_2_2_9_RFC_6749_4_1_2
    authorize = [a for a in access if a["path"] == "/authorize"]
    assert authorize and all("?" not in a["path"] for a in access)  # never the query
    (nothing,) = [a for a in access if a["status"] == 404]
    assert nothing["path"].startswith("/nothing") and nothing["endpoint"] == "unmatched"
    assert "\u202e" not in output  # JSON-escaped

    secrets = [
        flow.code,
        flow.verifier,
        flow.request_uri,
        flow.request_uri.rsplit(":", 1)[1],
        pushed.request_uri.rsplit(":", 1)[1],
        tokens["access_token"],
        tokens["refresh_token"],
        tokens["id_token"],
        PASSWORD,
        WRONG_PASSWORD,
        *driver.sent,
    ]
    assert len(driver.sent) >= 6
    leaked = [secret[:12] for secret in secrets if secret in output]
    assert not leaked, leaked
