"""TLS for Corridor's listeners and its calls to other servers (FAPI2 5.2.1, 5.2.2; BCP 195 =
RFC 9325 + RFC 8996).

TLS 1.2 is the floor; on TLS 1.2 a listener offers only ECDHE with AES-GCM or
ChaCha20-Poly1305 (the RFC 9325 4.2 recommended suites); TLS 1.3 suites are all acceptable.
Dev mode makes a local CA and a certificate for ``localhost`` and ``127.0.0.1``.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from corridor.core.private_files import private_directory, tighten, write_private

#: RFC 9325 4.2: the recommended TLS 1.2 suites (ECDHE + AEAD); no CBC, no DHE, no RSA kx.
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


def server_ssl_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """FAPI2 5.2.2: a listener's context, TLS 1.2+ with the BCP 195 suites only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(str(cert_file), str(key_file))
    context.set_alpn_protocols(["http/1.1"])
    return context


def outbound_context(ca_file: str | None = None, *, extra_ca_file: str | None = None) -> ssl.SSLContext:
    """FAPI2 5.2.1, RFC 9525: calls to other servers check their certificates, over TLS 1.2+.

    Trusted: ``ca_file`` alone when given, else the system's CAs; ``extra_ca_file`` adds to them.
    """
    context = ssl.create_default_context(cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if extra_ca_file:
        context.load_verify_locations(extra_ca_file)
    return context


@dataclass(frozen=True)
class DevTLS:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """design.md 5c: private keys 0600 from their first byte."""
    write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def ensure_dev_tls(directory: Path, hostnames: tuple[str, ...] = ("localhost",)) -> DevTLS:
    """Create (once) a local CA and a server certificate for localhost and 127.0.0.1."""
    private_directory(directory)
    tls = DevTLS(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    if tls.ca_file.exists() and tls.cert_file.exists() and tls.key_file.exists():
        tighten(directory / "ca-key.pem")
        tighten(tls.key_file)
        return tls
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Corridor local development CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=397))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(directory / "ca-key.pem", ca_key)
    tls.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(tls.key_file, key)
    tls.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return tls
