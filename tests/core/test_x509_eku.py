"""Chain re-verification of tls_client_auth certificates honours Extended Key Usage (issue 13 C5,
RFC 5280 4.2.1.12): present, it must include clientAuth; absent, any use is allowed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID as EKU

from corridor.core.x509 import PkiVerifier
from tests.pki import TestPKI


@pytest.mark.parametrize(
    ("eku", "verified"),
    [
        ((EKU.SERVER_AUTH,), False),
        ((EKU.CODE_SIGNING, EKU.EMAIL_PROTECTION), False),
        ((EKU.ANY_EXTENDED_KEY_USAGE,), False),
        ((EKU.CLIENT_AUTH,), True),
        ((EKU.SERVER_AUTH, EKU.CLIENT_AUTH), True),
        (None, True),
    ],
)
def test_pki_verifier_requires_client_auth_when_eku_is_present(
    tmp_path: Path, eku: Any, verified: bool
) -> None:
    pki = TestPKI(tmp_path)
    verifier = PkiVerifier.from_pem_file(str(pki.ca_file))
    cert = pki.issue("CN=eku,O=Test", eku=eku)
    assert verifier.verify(cert.cert, [], time.time()) is verified
