"""Signed messages as evidence (issue 17, FAPI 2.0 Message Signing non-repudiation NR1, NR3): after
a JAR + JARM flow the trail names the client's request object and the AS's signed authorization
response by SHA-256, the trace says both were signed (and by which key), ``corridor audit message``
gives the exact JWS back for a dispute, and an evidence pack carries both so that a third party
checks the client's signature offline; a swapped or re-signed message is named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from corridor.core.jose import SigningKey, jwk_thumbprint, read_header, verify_with_keys
from tests.client.test_client_flow import consent
from tests.client.test_message_signing_corridor import ms_client
from tests.server.test_evidence_pack import corridor, grant_of, lines, make_pack, offline
from tests.server.test_evidence_pack import driver as driver  # an AS of its own on a SQLite file
from tests.support import Driver


def signed_flow(driver: Driver) -> dict[str, Any]:
    """JAR + JARM with corridor.client; the messages as the client sent and received them."""
    registered, client = ms_client(driver)
    try:
        url, handle = client.start("openid accounts")
        tokens = client.finish(consent(driver, url), handle)
    finally:
        client.close()
    assert handle.request_object and tokens.authorization_response
    return {
        "client": registered,
        "request_object": handle.request_object,
        "response": tokens.authorization_response,
        "grant_id": grant_of(driver.as_, tokens.access_token),
    }


def sha256(jws: str) -> str:
    return hashlib.sha256(jws.encode()).hexdigest()


def test_the_trace_says_who_signed_each_message(driver: Driver) -> None:
    flow = signed_flow(driver)
    client_kid = read_header(flow["request_object"])["kid"]
    as_kid = read_header(flow["response"])["kid"]
    result = corridor("audit", "trace", flow["grant_id"], "--database", driver.as_.store.url)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"Signed: request signed by client key {client_kid} (verified)" in text, text
    assert sha256(flow["request_object"]) in text
    assert f"Signed: authorization response signed by the AS ({as_kid})" in text, text
    assert sha256(flow["response"]) in text
    thumbprint = jwk_thumbprint(flow["client"].key.public_jwk)
    assert f"with thumbprint {thumbprint}" in text


def test_audit_message_gives_back_the_exact_jws(driver: Driver) -> None:
    flow = signed_flow(driver)
    for jws, kind in (
        (flow["request_object"], "request_object"),
        (flow["response"], "authorization_response"),
    ):
        plain = corridor("audit", "message", sha256(jws), "--database", driver.as_.store.url)
        assert plain.returncode == 0 and plain.stdout.strip() == jws, plain.stderr
        as_json = json.loads(
            corridor("audit", "message", sha256(jws), "--json", "--database", driver.as_.store.url).stdout
        )
        assert as_json["kind"] == kind and as_json["client_id"] == flow["client"].client_id
    unknown = corridor("audit", "message", "0" * 64, "--database", driver.as_.store.url)
    assert unknown.returncode == 1 and "no signed message" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_the_kept_request_object_verifies_with_the_clients_public_key(driver: Driver) -> None:
    flow = signed_flow(driver)
    kept = driver.as_.store.messages.get(sha256(flow["request_object"]))
    assert kept is not None and kept["jws"] == flow["request_object"]
    public = flow["client"].key.public_jwk
    claims = verify_with_keys(kept["jws"], read_header(kept["jws"]), [public])
    assert claims["iss"] == flow["client"].client_id and claims["aud"] == driver.issuer
    with pytest.raises(ValueError):
        verify_with_keys(kept["jws"], read_header(kept["jws"]), [SigningKey.generate("ES256").public_jwk])


def packed(driver: Driver, tmp_path: Path) -> tuple[dict[str, Any], Path, dict[str, Any]]:
    flow = signed_flow(driver)
    out = tmp_path / "pack.json"
    made = make_pack(driver.as_, flow["grant_id"], out)
    assert made.returncode == 0, made.stdout + made.stderr
    return json.loads(out.read_text(encoding="utf-8")), out, flow


def test_a_pack_carries_both_messages_and_proves_them_offline(driver: Driver, tmp_path: Path) -> None:
    pack, out, flow = packed(driver, tmp_path)
    messages = {m["kind"]: m for m in pack["signed_messages"]}
    assert messages["request_object"]["jws"] == flow["request_object"]
    assert messages["authorization_response"]["jws"] == flow["response"]
    thumbprint = jwk_thumbprint(flow["client"].key.public_jwk)
    assert [jwk_thumbprint(k) for k in pack["client_keys"]] == [thumbprint]
    result = offline(out, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    said = [line for line in lines(result) if "signature verifies with" in line]
    assert any(
        line.startswith(f"request_object of client {flow['client'].client_id}")
        and line.endswith(f"the client's key with thumbprint {thumbprint}")
        for line in said
    ), result.stdout
    as_kid = read_header(flow["response"])["kid"]
    assert any(
        line.startswith("authorization_response") and line.endswith(f"the AS key {as_kid}") for line in said
    ), result.stdout
    assert lines(result)[-1] == "all records proven"


def test_a_swapped_request_object_is_named(driver: Driver, tmp_path: Path) -> None:
    """A request object the client really signed, but not the one the record names."""
    pack, _, flow = packed(driver, tmp_path)
    other = flow["client"].key.sign(
        {"iss": flow["client"].client_id, "aud": driver.issuer}, "oauth-authz-req+jwt"
    )
    for message in pack["signed_messages"]:
        if message["kind"] == "request_object":
            message["jws"] = other
    result = offline(pack, tmp_path)
    assert result.returncode == 1
    assert "it is not the message its record names (SHA-256 differs: swapped or edited)" in result.stdout


def test_a_request_object_checked_against_another_clients_key_fails(driver: Driver, tmp_path: Path) -> None:
    _, out, _ = packed(driver, tmp_path)
    jwks = tmp_path / "client-jwks.json"
    jwks.write_text(json.dumps({"keys": [SigningKey.generate("ES256").public_jwk]}))
    result = offline(out, tmp_path, "--client-jwks", str(jwks))
    assert result.returncode == 1
    assert "the signature does not verify with a client key" in result.stdout


def test_a_forged_authorization_response_is_named(driver: Driver, tmp_path: Path) -> None:
    """A response re-signed by a forger, with the record's hash changed to match: the record's
    own hash no longer holds, and the message's signature is not the AS's."""
    pack, _, flow = packed(driver, tmp_path)
    forger = SigningKey.generate("ES256")
    forged = forger.sign({"iss": driver.issuer, "aud": flow["client"].client_id, "code": "x"}, "JWT")
    for message in pack["signed_messages"]:
        if message["kind"] == "authorization_response":
            message["jws"] = forged
            message["sha256"] = sha256(forged)
            for record in pack["records"]:
                if (record["writer"], record["seq"]) == (message["writer"], message["seq"]):
                    detail = json.loads(record["detail"])
                    detail["authorization_response"]["sha256"] = sha256(forged)
                    record["detail"] = json.dumps(detail)
    result = offline(pack, tmp_path)
    assert result.returncode == 1
    assert "content does not match its hash (edited)" in result.stdout
    assert "the record naming it is not proven" in result.stdout
