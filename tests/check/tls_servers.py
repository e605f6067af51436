"""Local TLS servers with a chosen policy, for the TLS checks of ``corridor check`` and for the
broken-server tests (a listener that accepts TLS 1.1, CBC suites ...). 127.0.0.1 only.

``tls_server`` completes handshakes and records, server side, the version and suite of each:
the positive control that a probe really spoke what it claims (design.md 8). By default a
connection is closed after the handshake; ``handler`` gets the TLS socket to answer it, and
``forward_to`` makes a handler that pipes the decrypted bytes to an upstream TLS server (a
TLS-terminating front with its own, possibly broken, policy in front of a real AS)."""

from __future__ import annotations

import datetime
import ipaddress
import select
import socket
import ssl
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Every suite OpenSSL has, at security level 0 (TLS 1.0/1.1 need it on OpenSSL 3).
PERMISSIVE_CIPHERS = "ALL:@SECLEVEL=0"

Handler = Callable[[ssl.SSLSocket], None]


@dataclass(frozen=True)
class ServerCerts:
    """A test CA and two server certificates for ``localhost`` and 127.0.0.1: ECDSA P-256 (for
    ECDHE-ECDSA suites) and RSA 2048 (for ECDHE-RSA, DHE-RSA and static-RSA suites)."""

    ca_file: Path
    ecdsa_cert: Path
    ecdsa_key: Path
    rsa_cert: Path
    rsa_key: Path

    @property
    def ecdsa(self) -> tuple[Path, Path]:
        return self.ecdsa_cert, self.ecdsa_key

    @property
    def rsa(self) -> tuple[Path, Path]:
        return self.rsa_cert, self.rsa_key


def make_server_certs(directory: Path) -> ServerCerts:
    """Write a CA and its ECDSA and RSA server certificates into ``directory``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corridor check test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths: dict[str, tuple[Path, Path]] = {}
    keys: dict[str, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey] = {
        "ecdsa": ec.generate_private_key(ec.SECP256R1()),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    for kind, key in keys.items():
        # RSA keys are used for encryption too (static RSA key exchange): key_encipherment.
        usage = x509.KeyUsage(True, False, kind == "rsa", False, False, False, False, False, False)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(usage, critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        cert_file, key_file = directory / f"{kind}.pem", directory / f"{kind}-key.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_file.chmod(0o600)
        paths[kind] = (cert_file, key_file)
    return ServerCerts(ca_file, *paths["ecdsa"], *paths["rsa"])


@dataclass
class TlsServer:
    """A running :func:`tls_server`."""

    host: str
    port: int
    #: (``SSLSocket.version()``, suite name) of every handshake the server completed.
    handshakes: list[tuple[str, str]] = field(default_factory=list)
    #: Why handshakes failed, server side (e.g. ``NO_SHARED_CIPHER``, ``UNSUPPORTED_PROTOCOL``).
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def versions(self) -> set[str]:
        """The versions the server completed handshakes in (``TLSv1.1`` ...)."""
        with self._lock:
            return {version for version, _ in self.handshakes}

    @property
    def suites(self) -> set[str]:
        with self._lock:
            return {suite for _, suite in self.handshakes}

    def _record(self, tls: ssl.SSLSocket) -> None:
        cipher = tls.cipher()
        with self._lock:
            self.handshakes.append((tls.version() or "", cipher[0] if cipher else ""))

    def _fail(self, why: str) -> None:
        with self._lock:
            self.failures.append(why)


def server_context(
    cert_file: Path | str,
    key_file: Path | str,
    *,
    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A server context with this policy. ``ciphers`` sets the TLS 1.2-and-below suites (TLS 1.3
    suites are OpenSSL's defaults); without it, :data:`PERMISSIVE_CIPHERS` when ``minimum`` is
    below TLS 1.2 (OpenSSL 3 cannot do TLS 1.0/1.1 above security level 0), else the default."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated in ssl: the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = minimum
        context.maximum_version = maximum
    if ciphers is None and minimum < ssl.TLSVersion.TLSv1_2:
        ciphers = PERMISSIVE_CIPHERS
    if ciphers is not None:
        context.set_ciphers(ciphers)
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


@contextmanager
def tls_server(
    cert_file: Path | str,
    key_file: Path | str,
    *,
    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
    ciphers: str | None = None,
    handler: Handler | None = None,
    context: ssl.SSLContext | None = None,
) -> Iterator[TlsServer]:
    """A TLS listener on 127.0.0.1 (a free port) with this policy (see :func:`server_context`,
    or pass a ready ``context``); one thread per connection, so concurrent probes do not queue.
    Each connection: handshake (recorded), then ``handler(tls_socket)`` if given, then close."""
    context = context or server_context(
        cert_file, key_file, minimum=minimum, maximum=maximum, ciphers=ciphers
    )
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    server = TlsServer("127.0.0.1", listener.getsockname()[1])
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def serve_one(conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                server._record(tls)
                if handler is not None:
                    handler(tls)
        except ssl.SSLError as exc:
            server._fail(str(exc.reason or exc))
        except OSError as exc:
            server._fail(type(exc).__name__)
        finally:
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=serve_one, args=(conn,), daemon=True)
            worker.start()
            workers.append(worker)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        stop.set()
        acceptor.join(2)
        listener.close()
        for worker in workers:
            worker.join(2)


def forward_to(host: str, port: int, *, ca_file: Path | str, server_hostname: str = "localhost") -> Handler:
    """A handler that pipes the connection's decrypted bytes to ``host:port`` over a verified
    TLS connection, both ways, until either side closes: the front's TLS policy is its own, the
    answers are the upstream's."""
    upstream_context = ssl.create_default_context(cafile=str(ca_file))

    def handle(tls: ssl.SSLSocket) -> None:
        with (
            socket.create_connection((host, port), timeout=5) as raw,
            upstream_context.wrap_socket(raw, server_hostname=server_hostname) as upstream,
        ):
            pipe: dict[ssl.SSLSocket, ssl.SSLSocket] = {tls: upstream, upstream: tls}
            while True:
                ready, _, _ = select.select(list(pipe), [], [], 5)
                if not ready:
                    return
                for side in ready:
                    # Drain what is readable without blocking: a TLS 1.3 session ticket makes the
                    # socket readable with no application data behind it.
                    side.settimeout(0)
                    try:
                        while True:
                            data = side.recv(65536)
                            if not data:
                                return
                            pipe[side].sendall(data)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        pass
                    finally:
                        side.settimeout(5)

    return handle
