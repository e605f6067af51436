"""X.509 for mutual TLS (RFC 8705): certificate thumbprints, subject matching, chain
verification against a configured PKI, and the checks on self-signed registrations.

The TLS layer only collects the client certificate; these functions decide (design.md 5).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from collections.abc import Sequence
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from corridor.core.b64 import b64url_encode

#: RFC 8705 2.1.2: the subject parameters of tls_client_auth; a client registers exactly one.
SUBJECT_PARAMETERS = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
)


class CertificateError(ValueError):
    """A certificate that cannot be parsed or does not satisfy a rule; the message is safe to show."""


def load_certificate(data: bytes | str) -> x509.Certificate:
    """A certificate from PEM or DER."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise CertificateError("not an X.509 certificate") from exc


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def thumbprint_s256(certificate: x509.Certificate) -> str:
    """RFC 8705 3.1 ``x5t#S256``: base64url SHA-256 of the DER certificate."""
    return b64url_encode(hashlib.sha256(der(certificate)).digest())


def from_nginx_escaped(value: str) -> x509.Certificate:
    """nginx's ``$ssl_client_escaped_cert``: a URL-encoded PEM certificate."""
    return load_certificate(unquote(value))


def from_client_cert_header(value: str) -> x509.Certificate:
    """RFC 9440 2.2 ``Client-Cert``: a structured-field byte sequence ``:base64(DER):``."""
    import base64
    import binascii

    value = value.strip()
    if len(value) < 3 or value[0] != ":" or value[-1] != ":":
        raise CertificateError("Client-Cert must be a structured-field byte sequence")
    try:
        raw = base64.b64decode(value[1:-1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CertificateError("Client-Cert is not base64") from exc
    return load_certificate(raw)


def subject_matches(certificate: x509.Certificate, parameter: str, expected: str) -> bool:
    """RFC 8705 2.1.2: the certificate matches the one registered subject value."""
    if parameter == "tls_client_auth_subject_dn":
        try:
            wanted = x509.Name.from_rfc4514_string(expected)
        except ValueError:
            return False
        return certificate.subject.rfc4514_string() == wanted.rfc4514_string()
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if parameter == "tls_client_auth_san_dns":
        return expected.lower() in [n.lower() for n in names.get_values_for_type(x509.DNSName)]
    if parameter == "tls_client_auth_san_uri":
        return expected in names.get_values_for_type(x509.UniformResourceIdentifier)
    if parameter == "tls_client_auth_san_email":
        return expected.lower() in [n.lower() for n in names.get_values_for_type(x509.RFC822Name)]
    if parameter == "tls_client_auth_san_ip":
        try:
            return ipaddress.ip_address(expected) in names.get_values_for_type(x509.IPAddress)
        except ValueError:
            return False
    return False


def check_subject_value(parameter: str, value: str) -> None:
    """Registration: the subject value is well formed for its parameter."""
    if parameter == "tls_client_auth_subject_dn":
        try:
            x509.Name.from_rfc4514_string(value)
        except ValueError as exc:
            raise CertificateError("tls_client_auth_subject_dn is not an RFC 4514 DN") from exc
    elif parameter == "tls_client_auth_san_ip":
        try:
            ipaddress.ip_address(value)
        except ValueError as exc:
            raise CertificateError("tls_client_auth_san_ip is not an IP address") from exc
    elif not value or len(value) > 1024:
        raise CertificateError(f"{parameter} must be a non-empty string")


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def require_client_auth_eku(
    _policy: object, _certificate: x509.Certificate, usage: x509.ExtendedKeyUsage | None
) -> None:
    """RFC 5280 4.2.1.12, RFC 8705 2.1 (issue 13 C5): a client certificate with an Extended Key
    Usage must allow TLS client authentication (id-kp-clientAuth); a serverAuth-only, or an
    anyExtendedKeyUsage-only, certificate does not authenticate a client. No EKU: any use."""
    if usage is not None and x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        raise CertificateError("the certificate's Extended Key Usage does not allow client authentication")


class PkiVerifier:
    """Chain verification of tls_client_auth certificates against the configured CA bundle only
    (never against the listener's trust store, which also holds registered self-signed certificates)."""

    def __init__(self, ca_certificates: Sequence[x509.Certificate]) -> None:
        self.store = verification.Store(list(ca_certificates)) if ca_certificates else None

    @classmethod
    def from_pem_file(cls, path: str) -> PkiVerifier:
        if not path:
            return cls([])
        with open(path, "rb") as handle:
            return cls(x509.load_pem_x509_certificates(handle.read()))

    def verify(self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], now: float) -> bool:
        if self.store is None:
            return False
        builder = (
            verification.PolicyBuilder()
            .store(self.store)
            .time(datetime.datetime.fromtimestamp(now, datetime.UTC))
            # DN-only client certificates have no SAN: the end-entity policy permits that; but
            # permit_all drops the Extended Key Usage check, so it is added back (issue 13 C5).
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=verification.ExtensionPolicy.permit_all().may_be_present(
                    x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, require_client_auth_eku
                ),
            )
        )
        try:
            builder.build_client_verifier().verify(leaf, list(intermediates))
        except verification.VerificationError:
            return False
        return True
