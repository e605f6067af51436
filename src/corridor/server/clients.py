"""Registered clients: metadata validation (RFC 7591 2, FAPI2 5.3.2.1) and key lookup."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import httpx

from corridor.core import strictjson
from corridor.core.clock import Clock
from corridor.core.jose import FAPI_ALGORITHMS, JoseFailure, check_public_jwks, import_public_jwk
from corridor.core.x509 import (
    SUBJECT_PARAMETERS,
    CertificateError,
    check_subject_value,
    is_ca,
    load_certificate,
)
from corridor.store.sql import Row, Store

T = TypeVar("T")

#: FAPI2 5.3.2.1-6: the only client authentication methods (OIDC Core 9, RFC 8705 2).
AUTH_METHODS = ("private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth")
MTLS_AUTH_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")
#: FAPI2 5.3.2.1-4/5: DPoP (RFC 9449) or certificate-bound (RFC 8705 3) access tokens.
SENDER_CONSTRAINTS = ("dpop", "mtls")
#: RFC 7591 2 ``grant_types`` a client may be registered for (FAPI2 5.3.2.1-2: no implicit or
#: password grant); the default registration is the code flow with refresh tokens.
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
CODE_FLOW = ("authorization_code", "refresh_token")
#: RFC 6749 / OAuth Response Modes and JARM 2.3 (``jwt`` = ``query.jwt`` for response_type code):
#: the response modes a client may register (FAPI 2.0 Message Signing client metadata
#: ``response_modes``). Fragment and form_post modes are not offered: FAPI2 5.3.2.2-1 is code only.
RESPONSE_MODES = ("query", "jwt", "query.jwt")
#: JARM 2.3.1, 2.3.4: the modes answered with one signed JWT in the query parameter ``response``.
JARM_MODES = ("jwt", "query.jwt")


class ClientMetadataError(ValueError):
    """RFC 7591 3.2.2 ``invalid_client_metadata`` / ``invalid_redirect_uri``."""

    def __init__(self, message: str, error: str = "invalid_client_metadata") -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    scope: frozenset[str]
    #: RFC 7591 2: the grants the client may use at the token endpoint (RFC 6749 5.2
    #: ``unauthorized_client`` otherwise); only a client with ``authorization_code`` may push.
    grant_types: tuple[str, ...] = CODE_FLOW
    token_endpoint_auth_method: str = "private_key_jwt"
    sender_constraint: str = "dpop"
    jwks: Mapping[str, Any] | None = None
    jwks_uri: str | None = None
    resources: tuple[str, ...] = ()
    #: RFC 8705 2.1.2: the one registered subject parameter and its value (tls_client_auth).
    tls_subject: tuple[str, str] | None = None
    #: DER of the certificates registered in the JWKS ``x5c`` (self-signed mTLS, RFC 8705 2.2).
    certificates: tuple[bytes, ...] = ()
    use_mtls_endpoint_aliases: bool = False
    #: RFC 9101 10.5 / FAPI 2.0 Message Signing: PAR only with a signed request object.
    require_signed_request_object: bool = False
    #: FAPI 2.0 Message Signing client metadata: the response modes this client is restricted
    #: to (empty: not restricted).
    response_modes: tuple[str, ...] = ()
    #: JARM 3: the JWS alg of its authorization responses (None: the AS's signing alg).
    authorization_signed_response_alg: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Row) -> ClientRecord:
        meta = json.loads(row["metadata"])
        subject = next(((p, meta[p]) for p in SUBJECT_PARAMETERS if p in meta), None)
        keys = (meta.get("jwks") or {}).get("keys", [])
        return cls(
            client_id=row["client_id"],
            name=row["name"],
            redirect_uris=tuple(meta["redirect_uris"]),
            scope=frozenset(meta.get("scope", "").split()),
            grant_types=tuple(meta.get("grant_types") or CODE_FLOW),
            token_endpoint_auth_method=meta["token_endpoint_auth_method"],
            sender_constraint="dpop" if meta.get("dpop_bound_access_tokens") else "mtls",
            jwks=meta.get("jwks"),
            jwks_uri=meta.get("jwks_uri"),
            resources=tuple(meta.get("resources", ())),
            tls_subject=subject,
            certificates=tuple(base64.b64decode(k["x5c"][0]) for k in keys if k.get("x5c")),
            use_mtls_endpoint_aliases=bool(meta.get("use_mtls_endpoint_aliases")),
            require_signed_request_object=bool(meta.get("require_signed_request_object")),
            response_modes=tuple(meta.get("response_modes") or ()),
            authorization_signed_response_alg=meta.get("authorization_signed_response_alg"),
            metadata=meta,
        )


def is_identifier(value: str) -> bool:
    """Printable, no spaces, at most 255 characters: what a client_id (or user name) can be."""
    return 0 < len(value) <= 255 and value.isprintable() and " " not in value


def is_loopback_http(uri: str) -> bool:
    """RFC 8252 7.3: http is allowed only for loopback IP redirect URIs of native apps."""
    parts = urlsplit(uri)
    if parts.scheme != "http" or not parts.hostname:
        return False
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def check_no_userinfo(uri: str, netloc: str) -> None:
    """RFC 3986 3.2.1 and 7.6 (issue 13 C6): no ``user:password@`` before the host; the consent
    page would show it as part of the host (``https://bank.example@evil.example/``)."""
    if "@" in netloc:
        raise ClientMetadataError(
            f"redirect URI {uri!r} must not contain user information (user:password@) before the host "
            "(RFC 3986 3.2.1, 7.6)",
            "invalid_redirect_uri",
        )


def check_redirect_uri(uri: str) -> None:
    """FAPI2 5.3.2.2-8, RFC 6749 3.1.2: absolute https (or loopback http), no fragment."""
    if not isinstance(uri, str) or len(uri) > 2000:
        raise ClientMetadataError(
            "redirect URIs must be strings of at most 2000 characters", "invalid_redirect_uri"
        )
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise ClientMetadataError(f"not a URI: {uri!r}", "invalid_redirect_uri") from exc
    if parts.fragment or "#" in uri:
        raise ClientMetadataError(
            "redirect URIs must not have a fragment (RFC 6749 3.1.2)", "invalid_redirect_uri"
        )
    check_no_userinfo(uri, parts.netloc)
    if parts.scheme == "https" and parts.hostname:
        return
    if is_loopback_http(uri):
        return
    raise ClientMetadataError(
        f"redirect URI {uri!r} must use https (or http on a loopback IP) (FAPI2 5.3.2.2-8)",
        "invalid_redirect_uri",
    )


def build_client_metadata(
    *,
    redirect_uris: Sequence[str],
    grant_types: Sequence[str] = CODE_FLOW,
    jwks: Any = None,
    jwks_uri: str | None = None,
    scope: str = "",
    token_endpoint_auth_method: str = "private_key_jwt",
    sender_constraint: str = "dpop",
    resources: Sequence[str] = (),
    known_scopes: Sequence[str] = (),
    tls_subject: Mapping[str, str] | None = None,
    use_mtls_endpoint_aliases: bool = False,
    require_signed_request_object: bool = False,
    response_modes: Sequence[str] = (),
    authorization_signed_response_alg: str | None = None,
) -> dict[str, Any]:
    """Validate registration input and return the stored metadata (RFC 7591 2, RFC 8705 2)."""
    if token_endpoint_auth_method not in AUTH_METHODS:
        raise ClientMetadataError(
            f"token_endpoint_auth_method {token_endpoint_auth_method!r} is not allowed; "
            f"use one of {', '.join(AUTH_METHODS)} (FAPI2 5.3.2.1-3, 5.3.2.1-6)"
        )
    if sender_constraint not in SENDER_CONSTRAINTS:
        raise ClientMetadataError(f"sender constraint must be one of {', '.join(SENDER_CONSTRAINTS)}")
    grants = list(dict.fromkeys(grant_types))
    unknown_grants = [g for g in grants if g not in GRANT_TYPES]
    if not grants or unknown_grants:
        raise ClientMetadataError(
            f"grant type {(unknown_grants or [''])[0]!r} is not allowed; use {', '.join(GRANT_TYPES)} "
            "(FAPI2 5.3.2.1-2)",
            "invalid_client_metadata",
        )
    code_flow = "authorization_code" in grants
    if "refresh_token" in grants and not code_flow:
        # RFC 6749 4.4.3: the client credentials grant issues no refresh token.
        raise ClientMetadataError(
            "refresh_token needs authorization_code (RFC 6749 4.4.3)", "invalid_client_metadata"
        )
    if code_flow and not redirect_uris:
        raise ClientMetadataError("at least one redirect URI is required", "invalid_redirect_uri")
    if not code_flow and redirect_uris:
        raise ClientMetadataError(
            "redirect URIs belong to the authorization_code grant (RFC 7591 2)", "invalid_redirect_uri"
        )
    for uri in redirect_uris:
        check_redirect_uri(uri)
    if jwks is not None and jwks_uri is not None:
        raise ClientMetadataError("give jwks or jwks_uri, not both (RFC 7591 2)")
    if jwks is None and jwks_uri is None and token_endpoint_auth_method != "tls_client_auth":
        raise ClientMetadataError(f"{token_endpoint_auth_method} needs the client's keys: jwks or jwks_uri")
    subjects = {k: v for k, v in (tls_subject or {}).items() if v}
    if token_endpoint_auth_method == "tls_client_auth":
        if len(subjects) != 1:
            raise ClientMetadataError(
                "tls_client_auth needs exactly one of " + ", ".join(SUBJECT_PARAMETERS) + " (RFC 8705 2.1.2)"
            )
    elif subjects:
        raise ClientMetadataError("subject parameters belong to tls_client_auth only (RFC 8705 2.1.2)")
    if token_endpoint_auth_method == "self_signed_tls_client_auth" and jwks is None:
        raise ClientMetadataError(
            "self_signed_tls_client_auth needs a registered jwks with x5c (RFC 8705 2.2)"
        )
    meta: dict[str, Any] = {
        "redirect_uris": list(dict.fromkeys(redirect_uris)),
        "token_endpoint_auth_method": token_endpoint_auth_method,
        "grant_types": grants,
        "response_types": ["code"] if code_flow else [],
        "dpop_bound_access_tokens": sender_constraint == "dpop",
        "tls_client_certificate_bound_access_tokens": sender_constraint == "mtls",
        "use_mtls_endpoint_aliases": use_mtls_endpoint_aliases,
    }
    if require_signed_request_object:
        meta["require_signed_request_object"] = True  # RFC 9101 10.5
    unknown_modes = [m for m in response_modes if m not in RESPONSE_MODES]
    if unknown_modes:
        raise ClientMetadataError(
            f"response mode {unknown_modes[0]!r} is not supported; use {', '.join(RESPONSE_MODES)} "
            "(FAPI2 5.3.2.2-1, JARM 2.3)"
        )
    if response_modes:
        meta["response_modes"] = list(dict.fromkeys(response_modes))
    if authorization_signed_response_alg is not None:
        if authorization_signed_response_alg not in FAPI_ALGORITHMS:
            raise ClientMetadataError(
                "authorization_signed_response_alg must be one of "
                f"{', '.join(FAPI_ALGORITHMS)} (FAPI2 5.4.1-1b, JARM 3)"
            )
        meta["authorization_signed_response_alg"] = authorization_signed_response_alg
    for parameter, value in subjects.items():
        if parameter not in SUBJECT_PARAMETERS:
            raise ClientMetadataError(f"unknown subject parameter {parameter}")
        try:
            check_subject_value(parameter, value)
        except CertificateError as exc:
            raise ClientMetadataError(str(exc)) from exc
        meta[parameter] = value
    if jwks is not None:
        try:
            keys = check_public_jwks(jwks)
        except JoseFailure as exc:
            raise ClientMetadataError(f"jwks: {exc}") from exc
        for key in keys:
            check_x5c(key)
        if token_endpoint_auth_method == "self_signed_tls_client_auth" and not any(
            k.get("x5c") for k in keys
        ):
            raise ClientMetadataError(
                "self_signed_tls_client_auth needs a certificate in the jwks x5c (RFC 8705 2.2)"
            )
        meta["jwks"] = {"keys": keys}
    elif jwks_uri is not None:
        if not jwks_uri.startswith("https://"):
            raise ClientMetadataError("jwks_uri must be an https URL (FAPI2 5.4.2)")
        meta["jwks_uri"] = jwks_uri
    scopes = scope.split()
    unknown = [s for s in scopes if known_scopes and s not in known_scopes]
    if unknown:
        raise ClientMetadataError(f"unknown scope(s): {' '.join(unknown)}")
    meta["scope"] = " ".join(dict.fromkeys(scopes))
    for resource in resources:
        if not resource.startswith("https://") or "#" in resource:
            raise ClientMetadataError("resource identifiers must be https URLs without fragment (RFC 8707 2)")
    meta["resources"] = list(resources)
    return meta


def check_x5c(key: Mapping[str, Any]) -> None:
    """RFC 7517 4.7 / RFC 8705 2.2: the first x5c certificate carries the JWK's public key and,
    since registered certificates join the mTLS trust store, it must not be a CA (design.md 5)."""
    chain = key.get("x5c")
    if chain is None:
        return
    if not isinstance(chain, list) or not chain or not all(isinstance(c, str) for c in chain):
        raise ClientMetadataError("x5c must be a non-empty array of base64 certificates")
    try:
        certificate = load_certificate(base64.b64decode(chain[0], validate=True))
    except (binascii.Error, CertificateError) as exc:
        raise ClientMetadataError("x5c[0] is not a base64 DER certificate") from exc
    if is_ca(certificate):
        raise ClientMetadataError("a registered client certificate must not be a CA (CA:TRUE)")
    from cryptography.hazmat.primitives import serialization

    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    jwk_key: Any = import_public_jwk({k: v for k, v in key.items() if k != "x5c"}).get_op_key("verify")
    if certificate.public_key().public_bytes(serialization.Encoding.DER, spki) != jwk_key.public_bytes(
        serialization.Encoding.DER, spki
    ):
        raise ClientMetadataError("x5c[0] does not hold the JWK's public key")


def jwk_for_certificate(data: bytes) -> dict[str, Any]:
    """A public JWK for a client certificate's key, with the certificate in ``x5c``
    (how a self-signed mTLS client registers its certificate, RFC 8705 2.2)."""
    from joserfc import jwk

    try:
        certificate = load_certificate(data)
    except CertificateError as exc:
        raise ClientMetadataError(str(exc)) from exc
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    key = certificate.public_key()
    importer: Any = {
        rsa.RSAPublicKey: jwk.RSAKey,
        ec.EllipticCurvePublicKey: jwk.ECKey,
        ed25519.Ed25519PublicKey: jwk.OKPKey,
    }
    kind = next((cls for base, cls in importer.items() if isinstance(key, base)), None)
    if kind is None:
        raise ClientMetadataError("unsupported certificate key type")
    public = kind.import_key(key).as_dict(private=False)
    from cryptography.hazmat.primitives import serialization

    der_b64 = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
    return {**public, "x5c": [der_b64]}


class RegistrationCache(Generic[T]):
    """Registrations (clients, resource servers) cached for ``seconds``: an instance serves a
    registration changed by another process for at most that long, and one changed through its
    own Store not at all (``store.clients.changes``). Design.md: cache, never own."""

    def __init__(self, store: Store, seconds: float) -> None:
        self.store, self.seconds = store, seconds
        self._entries: dict[str, tuple[float, int, T]] = {}

    def get(self, key: str, load: Callable[[], T | None]) -> T | None:
        now, generation = time.monotonic(), self.store.clients.changes
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now and entry[1] == generation:
            return entry[2]
        value = load()
        if value is None:
            self._entries.pop(key, None)  # unknown ones are not cached: a new registration counts at once
        elif self.seconds > 0:
            if len(self._entries) >= 10_000:
                self._entries.clear()
            self._entries[key] = (now + self.seconds, generation, value)
        return value


class ClientRegistry:
    """Client lookups with cached records and cached remote JWKS (design.md: cache, never own)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        http: httpx.Client,
        jwks_cache_seconds: float = 300,
        registration_cache_seconds: float = 2.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.http = http
        self.jwks_cache_seconds = jwks_cache_seconds
        self._remote: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self._records: RegistrationCache[ClientRecord] = RegistrationCache(store, registration_cache_seconds)

    def get(self, client_id: str) -> ClientRecord | None:
        if not is_identifier(client_id):
            return None

        def load() -> ClientRecord | None:
            row = self.store.clients.get(client_id)
            return ClientRecord.from_row(row) if row is not None else None

        return self._records.get(client_id, load)

    def keys(self, client: ClientRecord, refresh: bool = False) -> list[dict[str, Any]]:
        """The client's public signing keys: registered ``jwks`` or fetched ``jwks_uri`` (FAPI2 5.4.2)."""
        if client.jwks is not None:
            return list(client.jwks["keys"])
        assert client.jwks_uri is not None
        now = self.clock.now()
        with self._lock:
            cached = self._remote.get(client.jwks_uri)
        if cached and not refresh and cached[0] > now:
            return cached[1]
        if cached and refresh and cached[0] - self.jwks_cache_seconds + 30 > now:
            return cached[1]  # refetch at most every 30 s on an unknown kid
        try:
            response = self.http.get(client.jwks_uri, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = check_public_jwks(strictjson.loads(response.content))  # bounded (issue 13 B5)
        except (httpx.HTTPError, ValueError) as exc:
            raise JoseFailure("the client's jwks_uri could not be fetched over TLS") from exc
        with self._lock:
            self._remote[client.jwks_uri] = (now + self.jwks_cache_seconds, keys)
        return keys
