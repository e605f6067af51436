"""The TLS checks of ``corridor check`` (FAPI2-SP-FINAL 5.2.1, 5.2.2-2, 5.2.3-2; RFC 9325, RFC
8996) against real local TLS servers on 127.0.0.1: good ones, broken ones, Corridor's own two
listeners. Every refusal the probe reports is backed by a positive control: the same probe
completes TLS 1.0/1.1 and the weak suites against a server that allows them, and the servers
record, on their side, which versions and suites they completed (design.md 8)."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from corridor.check.results import Status
from corridor.check.tls import (
    ALLOWED_TLS12,
    PROBED_TLS12,
    RECOMMENDED_TLS12,
    VERSIONS,
    TlsFindings,
    classify_suite,
    judge,
    probe_capabilities,
    probe_tls,
)
from corridor.transport.tls import DevTLS
from tests.check.tls_servers import (
    PERMISSIVE_CIPHERS,
    ServerCerts,
    TlsServer,
    forward_to,
    make_server_certs,
    server_context,
    tls_server,
)
from tests.support import RunningAS, running_as
from tests.tlsprobe import permissive_server

# Old protocol versions are deprecated in Python's ssl: exactly what these tests use on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")

ECDSA_GCM = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
V = ssl.TLSVersion


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> ServerCerts:
    return make_server_certs(tmp_path_factory.mktemp("check-tls"))


@pytest.fixture(scope="module")
def corridor(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS) -> Iterator[RunningAS]:
    """Corridor's two listeners (main and mTLS aliases), as ``corridor serve`` configures them;
    SQLite only: the TLS policy does not depend on the database."""
    data_dir = tmp_path_factory.mktemp("check-tls-as")
    with running_as(data_dir, tls, database_url=f"sqlite:///{data_dir / 'corridor.db'}") as running:
        yield running


def probe(server: TlsServer, certs: ServerCerts, *, timeout: float = 5.0) -> TlsFindings:
    return probe_tls(
        server.host, server.port, ca_file=str(certs.ca_file), server_hostname="localhost", timeout=timeout
    )


def test_this_openssl_can_offer_every_version_and_the_probed_suites() -> None:
    """probe_capabilities() reads the ClientHellos this OpenSSL writes: on this machine TLS 1.0
    and 1.1 can be offered (at security level 0), so the checks below can prove refusals."""
    capabilities = probe_capabilities()
    assert capabilities.versions == dict.fromkeys(VERSIONS, True)
    assert all(capabilities.suites[suite] for suite in RECOMMENDED_TLS12 + ALLOWED_TLS12)
    assert capabilities.suites["ECDHE-RSA-AES128-SHA"] and capabilities.suites["AES128-GCM-SHA256"]
    assert capabilities.others and not set(capabilities.others) & set(PROBED_TLS12)
    # A name this OpenSSL does not know is "could not test", never "refused".
    assert not capabilities.suites["RC4-SHA"]
    assert json.dumps(capabilities.as_dict())


def test_the_probe_speaks_tls_1_0_and_1_1_to_a_server_that_allows_them(certs: ServerCerts) -> None:
    """Positive control: the probe's TLS 1.0/1.1 offers complete against a permissive server,
    which records those versions on its side."""
    with tls_server(*certs.ecdsa, minimum=V.TLSv1, ciphers=PERMISSIVE_CIPHERS) as server:
        findings = probe(server, certs)
    assert findings.versions == dict.fromkeys(VERSIONS, True)
    assert {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"} <= server.versions
    assert {"ECDHE-ECDSA-AES128-SHA", "AECDH-AES128-SHA"} <= set(findings.tls12_accepted)
    status, reason, _ = judge(findings, browser_endpoint=True)
    assert status is Status.FAIL
    assert "TLS 1.0 accepted" in reason and "TLS 1.1 accepted" in reason


def test_the_probe_speaks_old_versions_to_the_repositorys_permissive_server(tls: DevTLS) -> None:
    """The same control against tests/tlsprobe.py's permissive server (the listener tests' one)."""
    with permissive_server(tls.cert_file, tls.key_file) as port:
        findings = probe_tls("127.0.0.1", port, ca_file=str(tls.ca_file), server_hostname="localhost")
    assert findings.versions["TLS 1.0"] is True and findings.versions["TLS 1.1"] is True
    assert findings.certificate_verified is True


def test_a_good_server_passes(certs: ServerCerts) -> None:
    """TLS 1.2+ with only ECDHE-ECDSA AES-GCM: PASS on both kinds of endpoint. Its refusals are
    real: the server saw the offers (its handshake failures) and the previous tests showed the
    probe completes them against a server that allows them."""
    with tls_server(*certs.ecdsa, ciphers=ECDSA_GCM) as server:
        findings = probe(server, certs)
    assert findings.versions == {"TLS 1.0": False, "TLS 1.1": False, "TLS 1.2": True, "TLS 1.3": True}
    assert findings.tls12_accepted == ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"]
    assert {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-CHACHA20-POLY1305", "AECDH-AES128-SHA"} <= set(
        findings.tls12_refused
    )
    assert "alert protocol_version" in findings.details["TLS 1.1"]
    assert any("UNSUPPORTED_PROTOCOL" in why for why in server.failures)  # the offers arrived
    assert findings.preferred == "TLS 1.3" and findings.certificate_verified is True
    assert findings.errors == [] and findings.connected
    for browser in (False, True):
        status, reason, _ = judge(findings, browser_endpoint=browser)
        assert (status, reason) == (
            Status.PASS,
            "TLS 1.2 and 1.3 accepted, TLS 1.0 and 1.1 refused; TLS 1.2 with only the RFC 9325 4.2 suites",
        )
    assert json.loads(json.dumps(findings.as_dict()))["versions"]["TLS 1.1"] is False


def test_a_server_that_accepts_tls_1_1_fails(certs: ServerCerts) -> None:
    ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"
    with tls_server(*certs.ecdsa, minimum=V.TLSv1_1, ciphers=ciphers) as server:
        findings = probe(server, certs)
    assert "TLSv1.1" in server.versions  # the probe really spoke TLS 1.1 to it
    assert findings.versions["TLS 1.1"] is True and findings.versions["TLS 1.0"] is False
    for browser in (False, True):
        status, reason, _ = judge(findings, browser_endpoint=browser)
        assert status is Status.FAIL
        assert reason.startswith("TLS 1.1 accepted (FAPI2-SP-FINAL-5.2.1, RFC 8996)")
        assert "TLS 1.0" not in reason


def test_a_cbc_suite_fails_a_non_browser_endpoint_only(certs: ServerCerts) -> None:
    """FAPI2 5.2.2-2: non-browser endpoints permit only the RFC 9325 4.2 suites; 5.2.3-2:
    browser endpoints may use any suite BCP 195 allows, and CBC with ECDHE is allowed."""
    with tls_server(*certs.rsa, ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA") as server:
        findings = probe(server, certs)
    assert "ECDHE-RSA-AES128-SHA" in server.suites
    assert set(findings.tls12_accepted) == {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA"}
    status, reason, _ = judge(findings, browser_endpoint=False)
    assert status is Status.FAIL
    assert "ECDHE-RSA-AES128-SHA" in reason and "5.2.2-2" in reason
    status, reason, notes = judge(findings, browser_endpoint=True)
    assert status is Status.PASS, reason
    assert any("ECDHE-RSA-AES128-SHA" in note and "not recommended" in note for note in notes)


def test_static_rsa_key_exchange_fails_a_non_browser_endpoint_and_warns_a_browser_one(
    certs: ServerCerts,
) -> None:
    """RFC 9325 4.1: SHOULD NOT negotiate static RSA key exchange (no forward secrecy)."""
    with tls_server(*certs.rsa, ciphers="ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256") as server:
        findings = probe(server, certs)
    assert "AES128-GCM-SHA256" in findings.tls12_accepted and "AES128-GCM-SHA256" in server.suites
    assert judge(findings, browser_endpoint=False)[0] is Status.FAIL
    status, reason, _ = judge(findings, browser_endpoint=True)
    assert status is Status.WARNING and "AES128-GCM-SHA256" in reason and "static RSA" in reason


def test_anonymous_and_null_suites_fail_every_endpoint(certs: ServerCerts) -> None:
    """RFC 9325 4.1: NULL and anonymous suites MUST NOT be negotiated: not even a browser
    endpoint may accept them (FAPI2 5.2.3-2)."""
    ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:AECDH-AES128-SHA:ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0"
    with tls_server(*certs.ecdsa, ciphers=ciphers) as server:
        findings = probe(server, certs)
    assert {"AECDH-AES128-SHA", "ECDHE-ECDSA-NULL-SHA"} <= set(findings.tls12_accepted) & server.suites
    status, reason, _ = judge(findings, browser_endpoint=True)
    assert status is Status.FAIL
    assert "AECDH-AES128-SHA" in reason and "ECDHE-ECDSA-NULL-SHA" in reason and "not allow" in reason


def test_ecdhe_chacha20_is_a_note_not_a_failure(certs: ServerCerts) -> None:
    """ECDHE ChaCha20-Poly1305 is IANA-recommended but not in RFC 9325 4.2's list; the OIDF suite
    allows it (FAPI issue 847): PASS with a note on both kinds of endpoint."""
    with tls_server(*certs.ecdsa, ciphers="ECDHE-ECDSA-CHACHA20-POLY1305") as server:
        findings = probe(server, certs)
    assert findings.tls12_accepted == ["ECDHE-ECDSA-CHACHA20-POLY1305"]
    for browser in (False, True):
        status, reason, notes = judge(findings, browser_endpoint=browser)
        assert status is Status.PASS, reason
        assert any("ECDHE-ECDSA-CHACHA20-POLY1305" in note and "4.2" in note for note in notes)


def test_the_sweep_finds_suites_that_are_not_probed_one_by_one(certs: ServerCerts) -> None:
    """ARIA and AES-CCM are on no list of ours: the sweep's ClientHello (every other suite this
    OpenSSL has) still finds them, one after the other."""
    ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-ARIA128-GCM-SHA256:ECDHE-ECDSA-AES128-CCM"
    with tls_server(*certs.ecdsa, ciphers=ciphers) as server:
        findings = probe(server, certs)
    assert {"ECDHE-ECDSA-ARIA128-GCM-SHA256", "ECDHE-ECDSA-AES128-CCM"} <= set(findings.tls12_accepted)
    assert {"ECDHE-ECDSA-ARIA128-GCM-SHA256", "ECDHE-ECDSA-AES128-CCM"} <= server.suites
    status, reason, notes = judge(findings, browser_endpoint=False)
    assert status is Status.FAIL and "ECDHE-ECDSA-ARIA128-GCM-SHA256" in reason
    assert any("ECDHE-ECDSA-AES128-CCM" in note for note in notes)
    assert judge(findings, browser_endpoint=True)[0] is Status.PASS


def test_a_listener_that_requires_a_client_certificate_is_still_probed(certs: ServerCerts) -> None:
    """The verdict rests on the server's ServerHello: a TLS 1.2 listener that demands a client
    certificate (and aborts without one, after choosing version and suite) is not "refused"."""
    context = server_context(*certs.ecdsa, maximum=V.TLSv1_2, ciphers=ECDSA_GCM)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(certs.ca_file)
    with tls_server(*certs.ecdsa, context=context) as server:
        findings = probe(server, certs)
    assert server.handshakes == []  # no handshake completed: every one stopped at the certificate
    assert findings.versions == {"TLS 1.0": False, "TLS 1.1": False, "TLS 1.2": True, "TLS 1.3": False}
    assert findings.tls12_accepted == ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"]
    assert "the handshake then stopped" in findings.details["ECDHE-ECDSA-AES128-GCM-SHA256"]


def test_tls_1_3_only_passes_and_tls_1_2_only_warns(certs: ServerCerts) -> None:
    """RFC 9325 3.1.1: SHOULD support TLS 1.3 (the OIDF suite warns without it)."""
    with tls_server(*certs.ecdsa, minimum=V.TLSv1_3) as server:
        only13 = probe(server, certs)
    assert only13.versions == {"TLS 1.0": False, "TLS 1.1": False, "TLS 1.2": False, "TLS 1.3": True}
    assert only13.tls12_accepted == []
    status, reason, notes = judge(only13, browser_endpoint=False)
    assert (status, reason) == (Status.PASS, "TLS 1.3 only; TLS 1.0, 1.1 and 1.2 refused")
    assert "TLS 1.2 refused: TLS 1.3 only" in notes

    with tls_server(*certs.ecdsa, maximum=V.TLSv1_2, ciphers=ECDSA_GCM) as server:
        only12 = probe(server, certs)
    assert only12.versions["TLS 1.3"] is False and only12.preferred == "TLS 1.2"
    status, reason, _ = judge(only12, browser_endpoint=False)
    assert status is Status.WARNING and "TLS 1.3 refused" in reason


def test_a_certificate_that_does_not_verify_fails(certs: ServerCerts, tls: DevTLS) -> None:
    with tls_server(*certs.ecdsa, ciphers=ECDSA_GCM) as server:
        findings = probe_tls(server.host, server.port, ca_file=str(tls.ca_file), server_hostname="localhost")
    assert findings.certificate_verified is False
    assert findings.versions["TLS 1.2"] is True  # the probes themselves do not verify
    status, reason, _ = judge(findings, browser_endpoint=False)
    assert status is Status.FAIL and "certificate does not verify" in reason


def test_a_closed_port_is_an_error_finding_not_an_exception() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    findings = probe_tls("127.0.0.1", port)
    assert findings.versions == dict.fromkeys(VERSIONS)
    assert len(findings.errors) == 1 and "cannot connect" in findings.errors[0]
    assert not findings.connected
    status, reason, _ = judge(findings, browser_endpoint=False)
    assert status is Status.FAIL and reason.startswith(f"no TLS answer from 127.0.0.1:{port}")


def test_a_server_that_never_answers_is_an_error_finding() -> None:
    """The kernel completes the TCP handshakes (backlog) and no one ever answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=128) as silent:
        findings = probe_tls("127.0.0.1", silent.getsockname()[1], timeout=0.5)
    assert findings.versions == dict.fromkeys(VERSIONS)
    assert any("no answer within 0.5 s" in error for error in findings.errors)
    assert judge(findings, browser_endpoint=False)[0] is Status.FAIL


@pytest.mark.parametrize("listener", ["main", "mtls"])
def test_corridors_own_listeners_pass(corridor: RunningAS, listener: str) -> None:
    """Corridor's TLS policy (corridor.transport.tls) as the check sees it from outside."""
    assert corridor.server is not None
    port = corridor.port if listener == "main" else corridor.server.settings.mtls_port
    findings = probe_tls("127.0.0.1", port, ca_file=str(corridor.tls.ca_file), server_hostname="localhost")
    assert findings.versions == {"TLS 1.0": False, "TLS 1.1": False, "TLS 1.2": True, "TLS 1.3": True}
    assert findings.tls12_accepted and set(findings.tls12_accepted) <= set(RECOMMENDED_TLS12 + ALLOWED_TLS12)
    assert findings.certificate_verified is True and findings.preferred == "TLS 1.3"
    for browser in (False, True):
        status, reason, _ = judge(findings, browser_endpoint=browser)
        assert status is Status.PASS, reason


def test_a_tls_1_1_front_forwards_to_corridor_and_fails_the_check(
    corridor: RunningAS, certs: ServerCerts
) -> None:
    """tls_servers.forward_to: a TLS 1.1-accepting front whose answers are Corridor's (for the
    broken-server tests): HTTP over TLS 1.1 through it reaches Corridor's discovery document."""
    handler = forward_to("127.0.0.1", corridor.port, ca_file=corridor.tls.ca_file)
    with tls_server(*certs.ecdsa, minimum=V.TLSv1_1, handler=handler) as front:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(certs.ca_file)
        context.minimum_version = context.maximum_version = V.TLSv1_1
        context.set_ciphers(PERMISSIVE_CIPHERS)
        request = (
            f"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: localhost:{corridor.port}\r\n"
            "Connection: close\r\n\r\n"
        )
        with (
            socket.create_connection((front.host, front.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as client,
        ):
            assert client.version() == "TLSv1.1"
            client.sendall(request.encode())
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        findings = probe(front, certs)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["issuer"] == corridor.issuer
    assert judge(findings, browser_endpoint=False)[0] is Status.FAIL
    assert findings.versions["TLS 1.1"] is True


# Judgements on hand-made findings: the rules that no local server above exercises.


def findings(**kwargs: Any) -> TlsFindings:
    base: dict[str, Any] = {
        "versions": {"TLS 1.0": False, "TLS 1.1": False, "TLS 1.2": True, "TLS 1.3": True},
        "tls12_accepted": ["ECDHE-RSA-AES128-GCM-SHA256"],
        "preferred": "TLS 1.3",
        "certificate_verified": True,
        "connected": True,
    }
    return TlsFindings("as.example", 443, **{**base, **kwargs})


def test_judge_a_version_that_could_not_be_tested_is_a_warning_not_a_pass() -> None:
    versions = {"TLS 1.0": None, "TLS 1.1": False, "TLS 1.2": True, "TLS 1.3": True}
    made = findings(versions=versions, details={"TLS 1.0": "untestable: this OpenSSL cannot offer it"})
    status, reason, _ = judge(made, browser_endpoint=False)
    assert status is Status.WARNING
    assert reason == "could not test TLS 1.0 here: untestable: this OpenSSL cannot offer it"


def test_judge_tls_1_2_preferred_over_an_available_tls_1_3_fails() -> None:
    status, reason, _ = judge(findings(preferred="TLS 1.2"), browser_endpoint=True)
    assert status is Status.FAIL and "RFC 9325 3.1.1" in reason


def test_judge_no_tls_1_2_nor_1_3_fails() -> None:
    versions = {"TLS 1.0": False, "TLS 1.1": False, "TLS 1.2": False, "TLS 1.3": False}
    status, reason, _ = judge(findings(versions=versions, tls12_accepted=[]), browser_endpoint=True)
    assert status is Status.FAIL and "neither TLS 1.2 nor TLS 1.3 accepted" in reason


@pytest.mark.parametrize(
    ("suite", "category", "non_browser", "browser"),
    [
        ("ECDHE-RSA-AES256-GCM-SHA384", "recommended", Status.PASS, Status.PASS),
        ("ECDHE-RSA-CHACHA20-POLY1305", "allowed", Status.PASS, Status.PASS),
        ("ECDHE-RSA-AES256-SHA384", "not-recommended", Status.FAIL, Status.PASS),
        ("DHE-RSA-AES128-GCM-SHA256", "not-recommended", Status.FAIL, Status.WARNING),
        ("AES256-SHA", "not-recommended", Status.FAIL, Status.WARNING),
        ("ADH-AES128-GCM-SHA256", "broken", Status.FAIL, Status.FAIL),
        ("NULL-SHA256", "broken", Status.FAIL, Status.FAIL),
        ("DES-CBC3-SHA", "broken", Status.FAIL, Status.FAIL),  # unknown to this OpenSSL: by name
        ("RC4-SHA", "broken", Status.FAIL, Status.FAIL),
    ],
)
def test_judge_tls12_suites(suite: str, category: str, non_browser: Status, browser: Status) -> None:
    assert classify_suite(suite) == category
    made = findings(tls12_accepted=["ECDHE-RSA-AES128-GCM-SHA256", suite])
    assert judge(made, browser_endpoint=False)[0] is non_browser
    assert judge(made, browser_endpoint=True)[0] is browser


def test_judge_notes_what_could_not_be_tested() -> None:
    made = findings(untestable=["RC4-SHA", "DES-CBC3-SHA"])
    status, _, notes = judge(made, browser_endpoint=False)
    assert status is Status.PASS
    assert any("could not test here" in note and "RC4-SHA" in note for note in notes)
