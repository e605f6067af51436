"""A small test PKI for mTLS: a client CA, client certificates with chosen subjects, and
self-signed certificates whose keys double as registered JWKs (RFC 8705 2.2)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwk

from corridor.core.jose import SigningKey
from corridor.core.x509 import thumbprint_s256

NOW = datetime.datetime.now(datetime.UTC)


def _name(dn: str) -> x509.Name:
    return x509.Name.from_rfc4514_string(dn)


@dataclass
class ClientCert:
    """A client certificate and its key, on disk for TLS libraries."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path

    @property
    def thumbprint(self) -> str:
        return thumbprint_s256(self.cert)

    def der_b64(self) -> str:
        return base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()

    def jwk(self) -> dict[str, Any]:
        """The public JWK of this certificate's key, with the certificate in x5c."""
        public = jwk.ECKey.import_key(self.key.public_key()).as_dict(private=False)
        return {**public, "alg": "ES256", "kid": self.thumbprint[:16], "x5c": [self.der_b64()]}

    def signing_key(self) -> SigningKey:
        private = jwk.ECKey.import_key(self.key).as_dict(private=True)
        return SigningKey({**private, "alg": "ES256", "kid": self.thumbprint[:16]})

    def ssl_context(self, ca_file: Path | str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(ca_file))
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def header_value(self) -> str:
        """RFC 9440 Client-Cert: a structured-field byte sequence."""
        return f":{self.der_b64()}:"


class TestPKI:
    """A CA for tls_client_auth and a factory of client certificates."""

    __test__ = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = self._build(
            _name("CN=Corridor test client CA,O=Test"),
            self.ca_key.public_key(),
            _name("CN=Corridor test client CA,O=Test"),
            self.ca_key,
            ca=True,
        )
        self.ca_file = directory / "client-ca.pem"
        self.ca_file.write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))
        self._count = 0

    @staticmethod
    def _build(
        subject: x509.Name,
        public: Any,
        issuer: x509.Name,
        signer: Any,
        *,
        ca: bool = False,
        sans: list[x509.GeneralName] | None = None,
        eku: Sequence[x509.ObjectIdentifier] | None = (x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,),
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(minutes=5))
            .not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        elif eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(signer, hashes.SHA256())

    def _save(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> ClientCert:
        self._count += 1
        cert_file = self.directory / f"client-{self._count}.pem"
        key_file = self.directory / f"client-{self._count}-key.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return ClientCert(cert, key, cert_file, key_file)

    def issue(
        self,
        dn: str,
        *,
        dns: str | None = None,
        uri: str | None = None,
        ip: str | None = None,
        email: str | None = None,
        eku: Sequence[x509.ObjectIdentifier] | None = (x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,),
    ) -> ClientCert:
        """A client certificate from the test CA; ``eku``: its Extended Key Usage purposes
        (clientAuth by default; None: no EKU extension at all)."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        if dns:
            sans.append(x509.DNSName(dns))
        if uri:
            sans.append(x509.UniformResourceIdentifier(uri))
        if ip:
            sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
        if email:
            sans.append(x509.RFC822Name(email))
        cert = self._build(
            _name(dn), key.public_key(), self.ca.subject, self.ca_key, sans=sans or None, eku=eku
        )
        return self._save(cert, key)

    def self_signed(self, dn: str = "CN=self-signed client", *, ca: bool = False) -> ClientCert:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._build(_name(dn), key.public_key(), _name(dn), key, ca=ca)
        return self._save(cert, key)
