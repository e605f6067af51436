# Why over 450 lines: one probe and its judge for one host:port; the cipher-suite tables are
# data, and the handshake helpers only make sense beside the verdicts that read them.
"""The TLS checks of ``corridor check``, by real handshakes (FAPI2-SP-FINAL 5.2.1, 5.2.2-1/2,
5.2.3-2; BCP 195 = RFC 9325 + RFC 8996).

For one ``host:port`` the probe finds out, with Python's ``ssl`` (OpenSSL):

- which protocol versions the server accepts: TLS 1.0, 1.1, 1.2, 1.3, one per handshake
  (minimum = maximum version);
- which TLS 1.2 cipher suites it accepts, offering one suite per handshake: the four RFC 9325
  4.2 recommends, the two ECDHE ChaCha20-Poly1305 suites, and a list of not recommended and of
  broken ones; then one "sweep" ClientHello with every other TLS 1.2 suite this OpenSSL can
  offer (ARIA, Camellia, CCM ...), repeated without each suite the server picks;
- which version it negotiates when offered TLS 1.2 and 1.3 (RFC 9325 3.1.1: prefer 1.3), and
  whether its certificate verifies against the configured CA for the host (RFC 9525).

A finding is only as good as the probe. Every handshake runs through memory BIOs, so the probe
reads the bytes of both sides: it parses its own ClientHello (did it really offer TLS 1.0, or
this suite?) and the server's first answer (a ServerHello naming the version and suite the
server chose, or an alert). "Accepted" means the server's ServerHello chose what was offered,
even if this client then stopped on its own policy; "refused" means an offer that is in the
ClientHello got an alert, a ServerHello for something else, or a closed connection (as some
load balancers refuse); what this machine's OpenSSL cannot put into a ClientHello at all
(TLS 1.0 on a build without it, RC4, 3DES ...) is "could not test here" (``untestable``), never
"refused". :func:`probe_capabilities` says up front what this OpenSSL can offer.

:func:`judge` turns the findings into the profile's verdict for a non-browser endpoint (5.2.2:
on TLS 1.2 only the suites BCP 195 *recommends*) or a browser endpoint (5.2.3-2: the suites
BCP 195 *allows*).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from corridor.check.results import Status

#: The protocol versions probed, in the report's spelling.
VERSIONS: tuple[str, ...] = ("TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3")

_TLS_VERSION = {
    "TLS 1.0": ssl.TLSVersion.TLSv1,
    "TLS 1.1": ssl.TLSVersion.TLSv1_1,
    "TLS 1.2": ssl.TLSVersion.TLSv1_2,
    "TLS 1.3": ssl.TLSVersion.TLSv1_3,
}
_WIRE_VERSION = {"TLS 1.0": 0x0301, "TLS 1.1": 0x0302, "TLS 1.2": 0x0303, "TLS 1.3": 0x0304}
_VERSION_NAME = {0x0300: "SSL 3.0", **{wire: name for name, wire in _WIRE_VERSION.items()}}

#: RFC 9325 4.2: the TLS 1.2 suites BCP 195 recommends; FAPI2 5.2.2-2 permits only these on
#: non-browser endpoints.
RECOMMENDED_TLS12: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
)
#: ECDHE with ChaCha20-Poly1305 (RFC 7905): forward secret AEAD suites that IANA marks
#: Recommended, but RFC 9325 4.2 does not list. The OpenID Foundation's suite permits them
#: since FAPI issue 847 (its allowed TLS 1.2 list is RFC 9325 4.2 plus IANA's recommended
#: suites), and many certified servers (Corridor's listener too) accept them, so they are a note,
#: not a warning or a failure.
ALLOWED_TLS12: tuple[str, ...] = ("ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305")
#: Allowed by BCP 195 but not recommended: CBC (RFC 9325 4.2 recommends only AEAD), static RSA
#: key exchange (RFC 9325 4.1 SHOULD NOT, no forward secrecy), finite-field DHE (dropped from
#: RFC 9325 4.2's list; the OIDF suite warns on it). FAIL on non-browser endpoints.
NOT_RECOMMENDED_TLS12: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-RSA-AES256-SHA",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-RSA-AES256-SHA384",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "AES128-SHA256",
    "AES256-SHA256",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-SHA",
    "DHE-RSA-AES256-SHA",
)
#: Not allowed by BCP 195 at all (RFC 9325 4.1: NULL, RC4, export and anonymous suites MUST
#: NOT be negotiated; 3DES offers 112 bits, below the 128 of the SHOULD NOT, and is broken by
#: Sweet32): FAIL on every endpoint. Modern OpenSSL builds often cannot offer RC4 or 3DES: then
#: they are "could not test here".
BROKEN_TLS12: tuple[str, ...] = (
    "DES-CBC3-SHA",
    "ECDHE-RSA-DES-CBC3-SHA",
    "RC4-SHA",
    "RC4-MD5",
    "ECDHE-RSA-RC4-SHA",
    "ECDHE-ECDSA-RC4-SHA",
    "NULL-SHA",
    "NULL-SHA256",
    "ECDHE-ECDSA-NULL-SHA",
    "ECDHE-RSA-NULL-SHA",
    "AECDH-AES128-SHA",
    "ADH-AES128-GCM-SHA256",
)
#: Every TLS 1.2 suite probed on its own, in the report's order.
PROBED_TLS12: tuple[str, ...] = RECOMMENDED_TLS12 + ALLOWED_TLS12 + NOT_RECOMMENDED_TLS12 + BROKEN_TLS12

#: What the version probes offer: every suite OpenSSL has for that version, at security level 0,
#: so a refusal is about the version and not about the suites or key sizes.
VERSION_PROBE_CIPHERS = "ALL:@SECLEVEL=0"
_EVERY_CIPHER = "ALL:COMPLEMENTOFALL:@SECLEVEL=0"
#: Seconds for one connection and handshake.
DEFAULT_TIMEOUT = 5.0
#: Handshakes in flight at once for one origin.
MAX_WORKERS = 16
#: The sweep stops after this many accepted suites (a server that accepts everything).
_SWEEP_LIMIT = 64

# TLS record and handshake types, alert descriptions (RFC 8446 5.1, 4, 6).
_HANDSHAKE, _ALERT = 22, 21
_CLIENT_HELLO, _SERVER_HELLO = 1, 2
_SUPPORTED_VERSIONS = 0x002B
_ALERTS = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    40: "handshake_failure",
    42: "bad_certificate",
    47: "illegal_parameter",
    48: "unknown_ca",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    116: "certificate_required",
    120: "no_application_protocol",
}

Category = Literal["recommended", "allowed", "not-recommended", "broken"]
ClientCert = tuple[str, str]


# --------------------------------------------------------------------------- wire parsing


def _records(data: bytes) -> list[tuple[int, bytes]]:
    """The complete TLS records at the start of ``data`` (type, payload); stops at anything else."""
    records: list[tuple[int, bytes]] = []
    at = 0
    while at + 5 <= len(data):
        kind, length = data[at], int.from_bytes(data[at + 3 : at + 5], "big")
        if kind not in (20, 21, 22, 23) or data[at + 1] != 3 or at + 5 + length > len(data):
            break
        records.append((kind, data[at + 5 : at + 5 + length]))
        at += 5 + length
    return records


def _first_handshake(records: list[tuple[int, bytes]], wanted: int) -> bytes | None:
    """The body of the first handshake message of type ``wanted`` (messages may span records);
    only the plaintext records before the first non-handshake record are read."""
    stream = bytearray()
    for kind, payload in records:
        if kind != _HANDSHAKE:
            break
        stream += payload
    at = 0
    while at + 4 <= len(stream):
        kind, length = stream[at], int.from_bytes(stream[at + 1 : at + 4], "big")
        if at + 4 + length > len(stream):
            return None
        if kind == wanted:
            return bytes(stream[at + 4 : at + 4 + length])
        at += 4 + length
    return None


def _extensions(body: bytes, at: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    if at + 2 > len(body):
        return found
    end = min(len(body), at + 2 + int.from_bytes(body[at : at + 2], "big"))
    at += 2
    while at + 4 <= end:
        kind, length = int.from_bytes(body[at : at + 2], "big"), int.from_bytes(body[at + 2 : at + 4], "big")
        found[kind] = body[at + 4 : at + 4 + length]
        at += 4 + length
    return found


@dataclass(frozen=True)
class _ClientHello:
    versions: frozenset[int]
    suites: tuple[int, ...]


def _parse_client_hello(data: bytes) -> _ClientHello | None:
    """What a ClientHello offers: versions (RFC 8446 4.2.1 supported_versions, else the legacy
    client_version: the only one OpenSSL accepts when minimum = maximum) and suite codes."""
    body = _first_handshake(_records(data), _CLIENT_HELLO)
    if body is None or len(body) < 35:
        return None
    try:
        at = 34
        at += 1 + body[at]  # session id
        length = int.from_bytes(body[at : at + 2], "big")
        suites = tuple(int.from_bytes(body[at + 2 + i : at + 4 + i], "big") for i in range(0, length, 2))
        at += 2 + length
        at += 1 + body[at]  # compression methods
    except IndexError:
        return None
    listed = _extensions(body, at).get(_SUPPORTED_VERSIONS)
    if listed:
        versions = frozenset(int.from_bytes(listed[1 + i : 3 + i], "big") for i in range(0, listed[0], 2))
    else:
        versions = frozenset({int.from_bytes(body[0:2], "big")})
    return _ClientHello(versions, suites)


@dataclass(frozen=True)
class _ServerHello:
    version: int
    suite: int


def _parse_server_hello(data: bytes) -> _ServerHello | None:
    """The version (supported_versions for TLS 1.3, RFC 8446 4.2.1) and suite a ServerHello (or
    a HelloRetryRequest, which is one) chose."""
    body = _first_handshake(_records(data), _SERVER_HELLO)
    if body is None or len(body) < 38:
        return None
    try:
        at = 34
        at += 1 + body[at]  # session id
        suite = int.from_bytes(body[at : at + 2], "big")
        at += 3  # suite, compression method
    except IndexError:
        return None
    chosen = _extensions(body, at).get(_SUPPORTED_VERSIONS)
    version = (
        int.from_bytes(chosen, "big") if chosen and len(chosen) == 2 else int.from_bytes(body[0:2], "big")
    )
    return _ServerHello(version, suite)


def _parse_alert(data: bytes) -> str | None:
    """The description of the first (plaintext) alert the server sent, if its answer was one."""
    for kind, payload in _records(data):
        if kind == _ALERT and len(payload) >= 2:
            return _ALERTS.get(payload[1], f"alert {payload[1]}")
        if kind != _HANDSHAKE:
            break
    return None


# --------------------------------------------------------------------------- OpenSSL side


@cache
def _suite_codes() -> dict[str, int]:
    """OpenSSL suite name -> IANA code, for every suite this OpenSSL knows (TLS 1.3 ones too)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers(_EVERY_CIPHER)
    return {str(c["name"]): int(c["id"]) & 0xFFFF for c in context.get_ciphers()}


@cache
def _suite_facts() -> dict[str, dict[str, Any]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers(_EVERY_CIPHER)
    return {str(c["name"]): dict(c) for c in context.get_ciphers()}


@cache
def _suite_names() -> dict[int, str]:
    return {code: name for name, code in _suite_codes().items()}


def _suite_name(code: int) -> str:
    return _suite_names().get(code, f"0x{code:04X}")


_context_lock = threading.Lock()


def _context(
    version: str | None,
    ciphers: str | None,
    client_cert: ClientCert | None,
    *,
    maximum: str | None = None,
) -> ssl.SSLContext | str:
    """A probe's client context, or why this OpenSSL cannot make it. Probes do not verify the
    certificate (a failed verification would look like a refusal); :func:`probe_tls` checks it
    in a handshake of its own."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        # TLS 1.0/1.1 are deprecated in Python's ssl: offering them is the point of the probe.
        # The lock keeps this module's own threads out of each other's warning filters.
        if version in ("TLS 1.0", "TLS 1.1"):
            with _context_lock, warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = context.maximum_version = _TLS_VERSION[version]
        elif version is not None:
            context.minimum_version = _TLS_VERSION[version]
            context.maximum_version = _TLS_VERSION[maximum or version]
        if ciphers is not None:
            context.set_ciphers(ciphers)
        if client_cert is not None:
            context.load_cert_chain(*client_cert)
    except (ssl.SSLError, ValueError) as exc:
        return f"this OpenSSL cannot offer it ({_reason(exc)})"
    return context


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # set by OpenSSL errors, absent on set_ciphers's
    if isinstance(exc, ssl.SSLError) and reason:
        return str(reason).lower().replace("_", " ")
    if isinstance(exc, ssl.SSLError) and exc.args and isinstance(exc.args[0], str):
        return exc.args[0].rstrip(".")
    return str(exc) or type(exc).__name__


def _offer(context: ssl.SSLContext) -> _ClientHello | str:
    """The ClientHello this context sends (written to memory, nothing leaves the machine), or
    why OpenSSL sends none."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="probe.invalid")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLError as exc:
        return f"this OpenSSL sends no ClientHello for it ({_reason(exc)})"
    hello = _parse_client_hello(outgoing.read())
    return hello if hello is not None else "this OpenSSL sent no parsable ClientHello"


def _offers_version(hello: _ClientHello | str, version: str) -> bool:
    return (
        isinstance(hello, _ClientHello)
        and _WIRE_VERSION[version] in hello.versions
        and any(code != 0x00FF for code in hello.suites)
    )


def _offers_suite(hello: _ClientHello | str, suite: str) -> bool:
    code = _suite_codes().get(suite)
    return isinstance(hello, _ClientHello) and code is not None and code in hello.suites


@dataclass(frozen=True)
class Capabilities:
    """What this machine's OpenSSL can offer, proven by the ClientHellos it writes."""

    openssl: str
    #: Version -> can a ClientHello offer it (with :data:`VERSION_PROBE_CIPHERS`).
    versions: dict[str, bool]
    #: Each of :data:`PROBED_TLS12` -> can a TLS 1.2 ClientHello offer it alone.
    suites: dict[str, bool]
    #: The further TLS 1.2 suites the sweep offers (everything else this OpenSSL puts into a
    #: TLS 1.2 ClientHello; PSK and SRP suites need credentials and are never sent).
    others: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "openssl": self.openssl,
            "versions": dict(self.versions),
            "suites": dict(self.suites),
            "others": list(self.others),
        }


def _version_offer(version: str) -> _ClientHello | str:
    ciphers = None if version == "TLS 1.3" else VERSION_PROBE_CIPHERS
    context = _context(version, ciphers, None)
    return context if isinstance(context, str) else _offer(context)


def _suite_offer(suite: str) -> _ClientHello | str:
    context = _context("TLS 1.2", f"{suite}:@SECLEVEL=0", None)
    return context if isinstance(context, str) else _offer(context)


@cache
def probe_capabilities() -> Capabilities:
    """Which versions and TLS 1.2 suites this OpenSSL can offer at all (no network: each
    ClientHello is written to memory and parsed). A version or suite it cannot offer is
    reported as "could not test here", never as refused."""
    versions = {version: _offers_version(_version_offer(version), version) for version in VERSIONS}
    suites = {suite: _offers_suite(_suite_offer(suite), suite) for suite in PROBED_TLS12}
    others: list[str] = []
    every = _context("TLS 1.2", _EVERY_CIPHER, None)
    hello = every if isinstance(every, str) else _offer(every)
    if isinstance(hello, _ClientHello):
        probed = {_suite_codes().get(suite) for suite in PROBED_TLS12}
        others = [_suite_name(code) for code in hello.suites if code != 0x00FF and code not in probed]
    return Capabilities(ssl.OPENSSL_VERSION, versions, suites, tuple(others))


# --------------------------------------------------------------------------- one handshake


@dataclass(frozen=True)
class Handshake:
    """One probe's result: ``accepted`` (the server's ServerHello chose what was offered),
    ``refused``, ``untestable`` (this OpenSSL could not offer it) or ``error`` (no answer)."""

    outcome: Literal["accepted", "refused", "untestable", "error"]
    #: The version and suite the server chose, when it sent a ServerHello.
    version: str = ""
    suite: str = ""
    detail: str = ""
    #: True when a TLS server answered (a ServerHello or an alert).
    answered: bool = False

    def describe(self) -> str:
        chose = f" ({self.version}, {self.suite})" if self.version else ""
        return f"{self.outcome}{chose}" + (f": {self.detail}" if self.detail else "")


@dataclass
class _Wire:
    sent: bytes = b""
    received: bytes = b""
    completed: bool = False
    failure: str = ""
    connect_error: str = ""
    timed_out: bool = False
    closed: bool = False


def _exchange(host: str, port: int, sni: str, context: ssl.SSLContext, timeout: float) -> _Wire:
    """One handshake over TCP through memory BIOs, keeping the bytes each side sent."""
    wire = _Wire()
    deadline = time.monotonic() + timeout
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        wire.connect_error = f"cannot connect to {host}:{port}: {_reason(exc)}"
        return wire
    sent, received = bytearray(), bytearray()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_hostname = None if _is_ip(sni) else sni
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with raw:
        try:
            while True:
                try:
                    tls.do_handshake()
                    wire.completed = True
                except ssl.SSLWantReadError:
                    pass
                pending = outgoing.read()
                if pending:
                    sent += pending
                    raw.sendall(pending)
                if wire.completed:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                raw.settimeout(remaining)
                data = raw.recv(65536)
                if not data:
                    wire.closed = True
                    break
                received += data
                incoming.write(data)
        except ssl.SSLError as exc:
            wire.failure = _reason(exc)
            pending = outgoing.read()  # the alert this client sent, for completeness
            sent += pending
        except TimeoutError:
            wire.timed_out = True
        except OSError as exc:  # reset by the peer, broken pipe
            wire.closed = True
            wire.failure = _reason(exc)
    wire.sent, wire.received = bytes(sent), bytes(received)
    return wire


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    sni: str
    timeout: float


def _probe(
    target: _Target, context: ssl.SSLContext | str, version: str, suite: str | None = None
) -> Handshake:
    """Offer ``version`` (and only ``suite``, if given) and classify the server's answer."""
    if isinstance(context, str):
        return Handshake("untestable", detail=context)
    wire = _exchange(target.host, target.port, target.sni, context, target.timeout)
    if wire.connect_error:
        return Handshake("error", detail=wire.connect_error)
    offered = _parse_client_hello(wire.sent)
    if offered is None:
        return Handshake("untestable", detail=f"this OpenSSL sent no ClientHello ({wire.failure or 'none'})")
    if not _offers_version(offered, version) or (suite is not None and not _offers_suite(offered, suite)):
        return Handshake("untestable", detail="this OpenSSL's ClientHello did not offer it")
    hello = _parse_server_hello(wire.received)
    if hello is not None:
        chosen = _VERSION_NAME.get(hello.version, f"0x{hello.version:04X}")
        name = _suite_name(hello.suite)
        if hello.version != _WIRE_VERSION[version]:
            return Handshake("refused", chosen, name, f"the server answered with {chosen}", answered=True)
        if suite is not None and name != suite:
            detail = f"the server chose {name}, which was not offered"
            return Handshake("error", chosen, name, detail, answered=True)
        stopped = wire.failure or "the connection closed"
        detail = "" if wire.completed else f"the server agreed; the handshake then stopped ({stopped})"
        return Handshake("accepted", chosen, name, detail, answered=True)
    alert = _parse_alert(wire.received)
    if alert is not None:
        return Handshake("refused", detail=f"alert {alert}", answered=True)
    if wire.timed_out:
        return Handshake("error", detail=f"no answer within {target.timeout:g} s")
    if wire.received and not _records(wire.received):
        return Handshake("error", detail="the answer is not TLS")
    if wire.closed:
        # As the OIDF suite does: some load balancers refuse by closing (or resetting).
        return Handshake("refused", detail="the server closed the connection without a ServerHello")
    return Handshake("error", detail=wire.failure or "no ServerHello")


def _sweep(
    target: _Target, others: Sequence[str], client_cert: ClientCert | None
) -> tuple[list[str], Handshake]:
    """Offer every suite in ``others`` at once, again without each one the server picks; returns
    the suites accepted and the last (refusing or failing) handshake."""
    left = list(others)
    accepted: list[str] = []
    last = Handshake("refused", detail="nothing to offer")
    for _ in range(_SWEEP_LIMIT):
        if not left:
            break
        context = _context("TLS 1.2", ":".join(left) + ":@SECLEVEL=0", client_cert)
        if isinstance(context, str):
            return accepted, Handshake("untestable", detail=context)
        last = _probe(target, context, "TLS 1.2")
        if last.outcome != "accepted" or last.suite not in left:
            break
        accepted.append(last.suite)
        left.remove(last.suite)
    else:
        last = Handshake("error", detail=f"stopped after {_SWEEP_LIMIT} accepted suites")
    return accepted, last


# --------------------------------------------------------------------------- findings


@dataclass
class TlsFindings:
    """What the probes of one ``host:port`` found."""

    host: str
    port: int
    #: Version -> accepted (True), refused (False), could not test (None).
    versions: dict[str, bool | None] = field(default_factory=dict)
    #: TLS 1.2 suites the server accepted (one at a time, then those the sweep found).
    tls12_accepted: list[str] = field(default_factory=list)
    #: TLS 1.2 suites offered alone and refused.
    tls12_refused: list[str] = field(default_factory=list)
    #: Versions and suites that could not be tested (this OpenSSL cannot offer them, or the
    #: probe got no answer: see ``errors``).
    untestable: list[str] = field(default_factory=list)
    #: One line per probe that got no usable answer (connection refused, timeout ...).
    errors: list[str] = field(default_factory=list)
    #: The version negotiated when TLS 1.2 and 1.3 are both offered ("" if none).
    preferred: str = ""
    #: Did the certificate verify (CA file or the system store, for the host; RFC 9525)?
    certificate_verified: bool | None = None
    certificate_error: str = ""
    #: True when any probe reached a TLS server (a ServerHello or an alert).
    connected: bool = False
    #: Each probe -> what happened, e.g. ``TLS 1.1 -> refused: alert protocol_version``.
    details: dict[str, str] = field(default_factory=dict)
    #: How many other TLS 1.2 suites the sweep offered together.
    swept: int = 0
    openssl: str = ssl.OPENSSL_VERSION
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "versions": dict(self.versions),
            "tls12_accepted": list(self.tls12_accepted),
            "tls12_refused": list(self.tls12_refused),
            "untestable": list(self.untestable),
            "errors": list(self.errors),
            "preferred": self.preferred,
            "certificate_verified": self.certificate_verified,
            "certificate_error": self.certificate_error,
            "connected": self.connected,
            "details": dict(self.details),
            "swept": self.swept,
            "openssl": self.openssl,
            "seconds": round(self.seconds, 3),
        }


def _verify_certificate(
    target: _Target, ca_file: str | None, client_cert: ClientCert | None
) -> tuple[bool | None, str]:
    """A normal, verifying handshake (the configured CA, else the system store; the host name
    checked): (verified, why not). None when no TLS connection could be made at all."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if client_cert is not None:
            context.load_cert_chain(*client_cert)
    except (OSError, ssl.SSLError) as exc:
        return None, f"cannot load the CA file or client certificate: {_reason(exc)}"
    try:
        with (
            socket.create_connection((target.host, target.port), timeout=target.timeout) as raw,
            context.wrap_socket(raw, server_hostname=target.sni),
        ):
            return True, ""
    except ssl.SSLCertVerificationError as exc:
        return False, exc.verify_message or _reason(exc)
    except (OSError, ssl.SSLError) as exc:
        return None, _reason(exc)


def probe_tls(
    host: str,
    port: int,
    *,
    ca_file: str | None = None,
    server_hostname: str | None = None,
    client_cert: ClientCert | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> TlsFindings:
    """Probe one ``host:port`` by real handshakes, concurrently (about a second for an origin).

    ``ca_file`` verifies the server's certificate (the system store without it);
    ``server_hostname`` (default ``host``) is sent as SNI and checked against the certificate;
    ``client_cert`` (certificate file, key file) is presented where the listener asks for one.
    The probes judge on the server's ServerHello, so a listener that requires a client
    certificate is probed correctly without one (it chooses version and suite, then aborts);
    only the verifying handshake may then end without a verdict on TLS 1.2.
    Never raises for network trouble: that goes into ``errors``."""
    started = time.monotonic()
    target = _Target(host, port, server_hostname or host, timeout)
    findings = TlsFindings(host, port, versions=dict.fromkeys(VERSIONS))
    capabilities = probe_capabilities()
    try:  # one connection first: an unreachable origin is one error, not fifty
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        findings.errors.append(f"cannot connect to {host}:{port}: {_reason(exc)}")
        findings.untestable = list(VERSIONS)
        findings.details = {"connection": findings.errors[0]}
        findings.seconds = time.monotonic() - started
        return findings

    jobs: dict[str, Callable[[], Handshake]] = {}
    for version in VERSIONS:
        ciphers = None if version == "TLS 1.3" else VERSION_PROBE_CIPHERS
        jobs[version] = _job(target, _context(version, ciphers, client_cert), version)
    for suite in PROBED_TLS12:
        jobs[suite] = _job(target, _context("TLS 1.2", f"{suite}:@SECLEVEL=0", client_cert), "TLS 1.2", suite)
    preferred_context = _context("TLS 1.2", None, client_cert, maximum="TLS 1.3")

    with ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="tls-probe") as pool:
        futures = {label: pool.submit(job) for label, job in jobs.items()}
        sweep = pool.submit(_sweep, target, capabilities.others, client_cert)
        preferred = pool.submit(_preferred, target, preferred_context)
        certificate = pool.submit(_verify_certificate, target, ca_file, client_cert)
        results = {label: future.result() for label, future in futures.items()}
        swept, sweep_last = sweep.result()
        findings.preferred, preferred_detail = preferred.result()
        findings.certificate_verified, findings.certificate_error = certificate.result()

    failed: dict[str, list[str]] = {}
    for label, result in results.items():
        findings.details[label] = result.describe()
        findings.connected |= result.answered
        if result.outcome == "error":
            failed.setdefault(result.detail, []).append(label)
        if result.outcome in ("untestable", "error"):
            findings.untestable.append(label)
    findings.errors += [f"{', '.join(labels)}: {detail}" for detail, labels in failed.items()]
    for version in VERSIONS:
        outcome = results[version].outcome
        findings.versions[version] = {"accepted": True, "refused": False}.get(outcome)
    for suite in PROBED_TLS12:
        if results[suite].outcome == "accepted":
            findings.tls12_accepted.append(suite)
        elif results[suite].outcome == "refused":
            findings.tls12_refused.append(suite)
    findings.tls12_accepted += [suite for suite in swept if suite not in findings.tls12_accepted]
    findings.swept = len(capabilities.others)
    findings.details["other TLS 1.2 suites"] = (
        f"{len(capabilities.others)} offered together; accepted {', '.join(swept) or 'none'}; "
        f"then {sweep_last.describe()}"
    )
    findings.connected |= sweep_last.answered
    if sweep_last.outcome == "error":
        findings.errors.append(f"other TLS 1.2 suites: {sweep_last.detail}")
    findings.details["TLS 1.2 and 1.3 offered"] = preferred_detail
    findings.details["certificate"] = (
        "verified"
        if findings.certificate_verified
        else f"{'not verified' if findings.certificate_verified is False else 'not checked'}: "
        f"{findings.certificate_error}"
    )
    findings.seconds = time.monotonic() - started
    return findings


def _job(
    target: _Target, context: ssl.SSLContext | str, version: str, suite: str | None = None
) -> Callable[[], Handshake]:
    return lambda: _probe(target, context, version, suite)


def _preferred(target: _Target, context: ssl.SSLContext | str) -> tuple[str, str]:
    """The version the server picks when offered TLS 1.2 and 1.3 (RFC 9325 3.1.1)."""
    if isinstance(context, str):
        return "", context
    wire = _exchange(target.host, target.port, target.sni, context, target.timeout)
    hello = _parse_server_hello(wire.received)
    if hello is None:
        return "", wire.connect_error or wire.failure or "no ServerHello"
    chosen = _VERSION_NAME.get(hello.version, f"0x{hello.version:04X}")
    return chosen, f"the server chose {chosen} ({_suite_name(hello.suite)})"


# --------------------------------------------------------------------------- judgement


def classify_suite(name: str) -> Category:
    """A TLS 1.2 suite's standing under BCP 195: ``recommended`` (RFC 9325 4.2), ``allowed``
    (ECDHE ChaCha20-Poly1305: see :data:`ALLOWED_TLS12`), ``not-recommended`` (allowed by BCP 195,
    not in 4.2's list) or ``broken`` (RFC 9325 4.1 MUST NOT: NULL, RC4, export, anonymous;
    and below 128 bits, 3DES)."""
    if name in RECOMMENDED_TLS12:
        return "recommended"
    if name in ALLOWED_TLS12:
        return "allowed"
    facts = _suite_facts().get(name)
    upper = name.upper()
    if facts is not None:
        symmetric = str(facts.get("symmetric") or "")
        if (
            not symmetric
            or "rc4" in symmetric
            or "des" in symmetric
            or facts.get("auth") == "auth-null"
            or int(facts.get("strength_bits") or 0) < 128
        ):
            return "broken"
        return "not-recommended"
    if any(mark in upper for mark in ("NULL", "RC4", "EXP", "DES", "ADH", "AECDH", "ANON", "MD5")):
        return "broken"
    return "not-recommended"


def _no_forward_secrecy_or_dhe(name: str) -> bool:
    """Static RSA key exchange (RFC 9325 4.1 SHOULD NOT) or finite-field DHE (no longer
    recommended by RFC 9325; the OIDF suite warns on it)."""
    facts = _suite_facts().get(name)
    if facts is not None:
        return facts.get("kea") in ("kx-rsa", "kx-dhe")
    return name.startswith(("AES", "DHE-", "CAMELLIA", "ARIA"))


def _names(suites: Sequence[str], limit: int = 4) -> str:
    """Suite names for a one-line reason: the first few, then how many more (notes list all)."""
    shown = ", ".join(suites[:limit])
    return shown if len(suites) <= limit else f"{shown} and {len(suites) - limit} more"


def judge(findings: TlsFindings, *, browser_endpoint: bool) -> tuple[Status, str, list[str]]:
    """The profile's verdict on one endpoint's TLS: (status, one-line reason, notes).

    FAIL: TLS 1.0 or 1.1 accepted (FAPI2 5.2.1, RFC 8996); neither TLS 1.2 nor 1.3 accepted;
    TLS 1.2 preferred over an available TLS 1.3 (RFC 9325 3.1.1 MUST); the certificate does not
    verify (RFC 9525); on TLS 1.2 a suite outside RFC 9325 4.2's list (non-browser endpoints,
    FAPI2 5.2.2-2; ECDHE ChaCha20-Poly1305 excepted, a note) or one BCP 195 does not allow
    (browser endpoints, 5.2.3-2: NULL, RC4, 3DES, export, anonymous).
    WARNING: a version that could not be tested; TLS 1.3 not supported (RFC 9325 3.1.1 SHOULD);
    on a browser endpoint, static RSA or DHE suites (allowed, RFC 9325 4.1 SHOULD NOT)."""
    where = f"{findings.host}:{findings.port}"
    if not findings.connected:
        why = findings.errors[0].split(": ", 1)[-1] if findings.errors else "no answer"
        return Status.FAIL, f"no TLS answer from {where}: {why}", list(findings.errors)

    fails: list[str] = []
    warns: list[str] = []
    notes: list[str] = []
    versions = findings.versions
    for old in ("TLS 1.0", "TLS 1.1"):
        if versions.get(old) is True:
            fails.append(f"{old} accepted (FAPI2-SP-FINAL-5.2.1, RFC 8996)")
        elif versions.get(old) is None:
            warns.append(f"could not test {old} here: {findings.details.get(old, 'not probed')}")
    modern = [versions.get("TLS 1.2"), versions.get("TLS 1.3")]
    if True not in modern:
        if None in modern:
            warns.append("could not test TLS 1.2 or TLS 1.3 (see the errors)")
        else:
            fails.append("neither TLS 1.2 nor TLS 1.3 accepted (FAPI2-SP-FINAL-5.2.1)")
    if versions.get("TLS 1.3") is False:
        warns.append("TLS 1.3 refused (RFC 9325 3.1.1: SHOULD support TLS 1.3)")
    elif versions.get("TLS 1.3") is None and versions.get("TLS 1.2") is True:
        warns.append(f"could not test TLS 1.3 here: {findings.details.get('TLS 1.3', 'not probed')}")
    if versions.get("TLS 1.3") is True and findings.preferred == "TLS 1.2":
        fails.append("TLS 1.2 negotiated although TLS 1.3 is available (RFC 9325 3.1.1: MUST prefer 1.3)")
    if versions.get("TLS 1.2") is False and versions.get("TLS 1.3") is True:
        notes.append("TLS 1.2 refused: TLS 1.3 only")
    if findings.certificate_verified is False:
        fails.append(f"the certificate does not verify for {findings.host}: {findings.certificate_error}")
    elif findings.certificate_verified is None and findings.certificate_error:
        notes.append(f"certificate not checked: {findings.certificate_error}")

    by_category: dict[Category, list[str]] = {
        "recommended": [],
        "allowed": [],
        "not-recommended": [],
        "broken": [],
    }
    for suite in findings.tls12_accepted:
        by_category[classify_suite(suite)].append(suite)
    if by_category["broken"]:
        fails.append(
            f"TLS 1.2 accepts suites BCP 195 does not allow: {_names(by_category['broken'])} "
            "(RFC 9325 4.1; FAPI2-SP-FINAL-5.2.3-2)"
        )
    weaker = by_category["not-recommended"]
    if weaker and not browser_endpoint:
        fails.append(
            f"TLS 1.2 accepts suites RFC 9325 4.2 does not recommend: {_names(weaker)} "
            "(FAPI2-SP-FINAL-5.2.2-2)"
        )
    elif weaker:
        legacy = [suite for suite in weaker if _no_forward_secrecy_or_dhe(suite)]
        if legacy:
            warns.append(
                f"TLS 1.2 accepts static RSA or DHE suites: {_names(legacy)} "
                "(allowed on a browser endpoint, FAPI2-SP-FINAL-5.2.3-2; RFC 9325 4.1 SHOULD NOT)"
            )
        rest = [suite for suite in weaker if suite not in legacy]
        if rest:
            notes.append(
                f"TLS 1.2 accepts suites allowed but not recommended by BCP 195: {', '.join(rest)} "
                "(a browser endpoint, FAPI2-SP-FINAL-5.2.3-2)"
            )
    if by_category["allowed"]:
        notes.append(
            f"TLS 1.2 accepts {', '.join(by_category['allowed'])}: IANA-recommended, not in RFC 9325 "
            "4.2's list; the OIDF suite allows them (FAPI issue 847)"
        )
    if findings.tls12_accepted:
        notes.append(f"TLS 1.2 suites accepted: {', '.join(findings.tls12_accepted)}")
    untestable_suites = [label for label in findings.untestable if label not in VERSIONS]
    if untestable_suites:
        notes.append(
            "could not test here (this OpenSSL cannot offer them, or no answer): "
            + ", ".join(untestable_suites)
        )
    notes.extend(f"error: {error}" for error in findings.errors)

    if fails:
        return Status.FAIL, "; ".join(fails), warns + notes
    if warns:
        return Status.WARNING, "; ".join(warns), notes
    if versions.get("TLS 1.2") is not True:
        return Status.PASS, "TLS 1.3 only; TLS 1.0, 1.1 and 1.2 refused", notes
    if by_category["not-recommended"]:
        kind = "suites BCP 195 allows (browser endpoint)"
    elif by_category["allowed"]:
        kind = "the RFC 9325 4.2 suites and ECDHE ChaCha20-Poly1305"
    else:
        kind = "only the RFC 9325 4.2 suites"
    tls13 = "TLS 1.2 and 1.3" if versions.get("TLS 1.3") else "TLS 1.2"
    return Status.PASS, f"{tls13} accepted, TLS 1.0 and 1.1 refused; TLS 1.2 with {kind}", notes
