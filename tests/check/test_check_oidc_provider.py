"""``corridor check --all-variants`` against panva's oidc-provider, the certified peer (FAPI 2.0
Final profile on: PAR required, PKCE S256, DPoP with nonces, private_key_jwt, mTLS with
certificate-bound tokens, JWT access tokens for a resource server): 0 FAIL in every variant.
Where the peer and a module disagreed, the module was checked against the OIDF suite's source;
the findings are in the module docstrings and in the README's corridor check section."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from corridor.transport.tls import DevTLS
from tests.check.peer import FapiPeer, running_fapi_peer
from tests.test_serve import CORRIDOR

#: The modules whose outcome with this peer is WARNING, and why (the suite's own WARNING).
EXPECTED_WARNINGS: dict[str, str] = {
    # The resource server validates JWT access tokens locally, so the token of a code that was
    # redeemed twice still works there: the suite's check of it is a WARNING (RFC 6749 4.1.2 SHOULD).
    "fapi2-security-profile-final-attempt-reuse-authorization-code-after-one-second": "",
}


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS) -> Iterator[FapiPeer]:
    with running_fapi_peer(tmp_path_factory.mktemp("check-peer"), tls) as running:
        yield running


def test_all_variants_pass_against_oidc_provider(peer: FapiPeer, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = subprocess.run(
        [*CORRIDOR, "check", str(peer.config_path), "--all-variants", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = result.stdout.strip().splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert not failed, "\n".join(failed) + "\n" + peer.diagnostics()[-3000:]
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert len(report["variants"]) == 8
    assert report["counts"]["FAIL"] == 0
    warnings = {
        r["name"] for variant in report["variants"] for r in variant["results"] if r["status"] == "WARNING"
    }
    assert warnings <= set(EXPECTED_WARNINGS), warnings
    facts = {row["topic"]: row["verdict"] for row in report["header"]["facts"]}
    assert facts["PAR mandatory"] == "proven"
    assert facts["PKCE S256 enforced"] == "proven"
    assert facts["DPoP nonces"] == "proven"
