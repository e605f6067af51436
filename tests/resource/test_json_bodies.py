"""JSON request bodies at a protected resource are bounded before the app parses them
(issue 13 B5): a body nested deeper than 32 levels, or larger than 64 KiB, is refused by
ProtectedResource with invalid_request (400, or 413 for size) and recorded; it never reaches
``request.json()`` (which recurses, and gave a 500)."""

from __future__ import annotations

import json

import httpx

from corridor.core.rules import Rule
from tests.resource.api import RunningRS
from tests.resource.test_guard import call, issued, proof  # noqa: F401  (the token fixture)
from tests.support import Client


def post_payment(rs: RunningRS, issued: tuple[Client, str, str], body: bytes) -> httpx.Response:  # noqa: F811
    client, token, _ = issued
    headers = {
        "Authorization": f"DPoP {token}",
        "DPoP": proof(rs, client, "POST", "/payments", token),
        "Content-Type": "application/json",
    }
    return call(rs, "POST", "/payments", headers, content=body)


def test_a_deep_json_body_is_invalid_request(rs: RunningRS, issued: tuple[Client, str, str]) -> None:  # noqa: F811
    for depth in (33, 494, 10_000):
        response = post_payment(rs, issued, b"[" * depth + b"]" * depth)
        assert response.status_code == 400, (depth, response.text)
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('DPoP error="invalid_request"'), challenge
    decision = rs.guard.decisions[-1]
    assert decision["outcome"] == "refused" and decision["rule"] == Rule.ISSUE_13_B5, decision


def test_a_large_json_body_is_refused(rs: RunningRS, issued: tuple[Client, str, str]) -> None:  # noqa: F811
    response = post_payment(rs, issued, json.dumps({"amount": "1.00", "pad": "x" * 70_000}).encode())
    assert response.status_code == 413, response.text


def test_a_plain_json_body_still_reaches_the_route(rs: RunningRS, issued: tuple[Client, str, str]) -> None:  # noqa: F811
    """Positive control: a shallow body is replayed to the app unchanged."""
    response = post_payment(rs, issued, json.dumps({"amount": "10.00", "currency": "EUR"}).encode())
    assert response.status_code == 201, response.text
