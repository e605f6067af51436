"""The happy flow catches an authorization server that leaves out ``iss`` or sends a wrong one
(RFC 9207 2, FAPI2 5.3.2.2-7); the user-rejects module catches a code issued after a denial.
Each fault is made in an in-process Corridor, and the same module first PASSes without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import corridor.server.jarm as jarm
import corridor.server.responses as responses
from corridor.check.results import Status
from corridor.transport.tls import DevTLS
from tests.check.inprocess import checked_corridor, run_modules
from tests.support import RunningAS

HAPPY = "fapi2-security-profile-final-happy-flow"
REJECTS = "fapi2-security-profile-final-user-rejects-authentication"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS) -> Iterator[tuple[RunningAS, Path]]:
    with checked_corridor(tmp_path_factory.mktemp("check-basic"), tls) as stack:
        yield stack


def rewrite_iss(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    original = responses.authorization_response

    def faulty(redirect_uri: str, params: dict[str, str]) -> Any:
        params = dict(params)
        if value is None:
            params.pop("iss", None)
        else:
            params["iss"] = value
        return original(redirect_uri, params)

    monkeypatch.setattr(jarm, "authorization_response", faulty)  # where replies are built


def test_happy_flow_and_user_rejects_pass_on_corridor(stack: tuple[RunningAS, Path]) -> None:
    running, config = stack
    results = run_modules(config, [HAPPY, REJECTS], running=running)
    assert results[HAPPY].status is Status.PASS, results[HAPPY].reason
    assert results[REJECTS].status is Status.PASS, results[REJECTS].reason
    # The transcript shows both clients' flows, with the secrets cut.
    steps = {exchange.step for exchange in results[HAPPY].transcript}
    assert any(step.startswith("token (") for step in steps), steps
    bodies = " ".join(e.request_body for e in results[HAPPY].transcript)
    assert "client_assertion=" in bodies and "[redacted]" in bodies


@pytest.mark.parametrize(
    ("iss", "reason"),
    [(None, "no iss in the authorization response"), ("https://evil.example", "is not the issuer")],
)
def test_missing_or_wrong_iss_fails_the_happy_flow(
    stack: tuple[RunningAS, Path], monkeypatch: pytest.MonkeyPatch, iss: str | None, reason: str
) -> None:
    running, config = stack
    rewrite_iss(monkeypatch, iss)
    results = run_modules(config, [HAPPY, REJECTS], running=running)
    assert results[HAPPY].status is Status.FAIL
    assert reason in results[HAPPY].reason
    # iss on error responses too (RFC 9207 2).
    assert results[REJECTS].status is Status.FAIL
    assert reason in results[REJECTS].reason
