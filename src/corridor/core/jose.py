"""JOSE for FAPI 2.0: the algorithm allow-list, key rules, JWKS handling and JWS
verification, on joserfc (design.md 5b: always pass ``algorithms=`` explicitly).

FAPI2 5.4.1-1b allows only PS256, ES256 and EdDSA with Ed25519; 5.4.1-2/3 set
RSA >= 2048 bits and EC >= 224 bits; 5.4.3 says verifiers facing duplicate
``kid`` values pick the key by ``kty``/``use``/``alg``/``crv`` too.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from joserfc import jwk, jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jws import JWSRegistry

from corridor.core import strictjson
from corridor.core.b64 import b64url_decode, b64url_encode

# FAPI2 5.4.1-1b names "EdDSA" (with Ed25519); RFC 9864 prefers "Ed25519" and joserfc
# warns on every use. We keep the FAPI name and silence only that warning.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

#: FAPI2 5.4.1-1b: the only signing algorithms accepted or produced.
FAPI_ALGORITHMS: tuple[str, ...] = ("PS256", "ES256", "EdDSA")

_KTY_FOR_ALG = {"PS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
_CRV_FOR_ALG = {"ES256": "P-256", "EdDSA": "Ed25519"}
_PRIVATE_TYPES: dict[str, type] = {
    "ES256": ec.EllipticCurvePrivateKey,
    "PS256": rsa.RSAPrivateKey,
    "EdDSA": ed25519.Ed25519PrivateKey,
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: Largest compact JWS we parse at all (an RSA-4096 jwk header fits well inside).
MAX_JWS_LENGTH = 16_384


_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)
_PSS_SHA256 = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=32)


class JoseFailure(ValueError):
    """A JWS or key failed a rule; the message is safe to show."""


class _Registry(JWSRegistry):
    # Room for an RSA-4096 ``jwk`` header in DPoP proofs; payloads stay small.
    max_header_length = 4096
    max_payload_length = 12_288


def registry_for(algorithms: Sequence[str]) -> JWSRegistry:
    """A registry restricted to ``algorithms``; unknown header names are ignored, never fetched (K8)."""
    return _Registry(algorithms=list(algorithms), strict_check_header=False)


_REGISTRIES: dict[tuple[str, ...], JWSRegistry] = {}


def _registry(alg: str) -> JWSRegistry:
    key = (alg,)
    reg = _REGISTRIES.get(key)
    if reg is None:
        reg = _REGISTRIES[key] = registry_for(key)
    return reg


def check_public_jwk(data: Mapping[str, Any]) -> None:
    """FAPI2 5.4.1-2/3 and RFC 9449 4.3-7: a public key of an allowed type and size."""
    if not isinstance(data, Mapping):
        raise JoseFailure("a JWK must be a JSON object")
    if _PRIVATE_MEMBERS & set(data):
        raise JoseFailure("the JWK contains private key material")
    kty = data.get("kty")
    if kty == "RSA":
        n = data.get("n")
        if not isinstance(n, str):
            raise JoseFailure("RSA JWK without a modulus")
        try:
            bits = int.from_bytes(b64url_decode(n), "big").bit_length()
        except ValueError as exc:
            raise JoseFailure("RSA JWK modulus is not base64url") from exc
        if bits < 2048:
            raise JoseFailure("RSA keys must be at least 2048 bits (FAPI2 5.4.1-2)")
    elif kty == "EC":
        if data.get("crv") != "P-256":
            raise JoseFailure("EC keys must use P-256 (FAPI2 5.4.1-1b, 5.4.1-3)")
    elif kty == "OKP":
        if data.get("crv") != "Ed25519":
            raise JoseFailure("OKP keys must use Ed25519 (FAPI2 5.4.1-1b)")
    else:
        raise JoseFailure("unsupported key type")
    alg = data.get("alg")
    if alg is not None and alg not in FAPI_ALGORITHMS:
        raise JoseFailure("the key's algorithm is not allowed (FAPI2 5.4.1-1b)")


_STR_ONLY = frozenset((str,))


def _cache_key(data: Mapping[str, Any]) -> Hashable:
    """What identifies a JWK in the parsed-key cache: its members as a tuple when all are
    strings (the usual public JWK, no JSON encoding needed), else its canonical JSON."""
    if _STR_ONLY.issuperset(map(type, data.values())):
        return tuple(sorted(data.items()))
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=4096)
def _import_public(key: Hashable) -> tuple[jwk.Key, str]:
    data = dict(key) if isinstance(key, tuple) else json.loads(str(key))
    check_public_jwk(data)
    try:
        parsed = jwk.import_key(data)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise JoseFailure("the JWK cannot be parsed") from exc
    return parsed, str(parsed.thumbprint())


def import_public_jwk(data: Mapping[str, Any]) -> jwk.Key:
    """Validate and import a public JWK; parsed keys (and their checks) are cached."""
    if not isinstance(data, Mapping):
        raise JoseFailure("a JWK must be a JSON object")
    try:
        return _import_public(_cache_key(data))[0]
    except TypeError as exc:  # unorderable or unhashable members
        raise JoseFailure("the JWK cannot be parsed") from exc


def jwk_thumbprint(data: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url (computed once per key)."""
    if not isinstance(data, Mapping):
        raise JoseFailure("a JWK must be a JSON object")
    try:
        return _import_public(_cache_key(data))[1]
    except TypeError as exc:
        raise JoseFailure("the JWK cannot be parsed") from exc


def check_public_jwks(data: Any) -> list[dict[str, Any]]:
    """A registered JWKS: ``{"keys": [...]}`` of valid public keys (FAPI2 5.4.1, 5.4.2)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise JoseFailure('a JWKS must be an object with a non-empty "keys" array')
    keys = []
    for item in data["keys"]:
        if not isinstance(item, Mapping):
            raise JoseFailure("every JWKS entry must be a JSON object")
        if item.get("use", "sig") != "sig":
            continue
        import_public_jwk(item)
        keys.append(dict(item))
    if not keys:
        raise JoseFailure("the JWKS has no signing key")
    return keys


def alg_fits_key(alg: str, key: Mapping[str, Any]) -> bool:
    """FAPI2 5.4.3: the key's kty/crv/use/alg must fit the JWS algorithm."""
    if key.get("kty") != _KTY_FOR_ALG.get(alg):
        return False
    crv = _CRV_FOR_ALG.get(alg)
    if crv is not None and key.get("crv") != crv:
        return False
    if key.get("use", "sig") != "sig":
        return False
    return bool(key.get("alg", alg) == alg)


def select_keys(keys: Iterable[Mapping[str, Any]], alg: str, kid: str | None) -> list[Mapping[str, Any]]:
    """Candidate verification keys for a JWS header (FAPI2 5.4.3 duplicate-kid rule)."""
    return [k for k in keys if (kid is None or k.get("kid") == kid) and alg_fits_key(alg, k)]


def read_header(token: str) -> dict[str, Any]:
    """Parse the protected header of a compact JWS without trusting it (RFC 7515 7.1)."""
    if not isinstance(token, str) or len(token) > MAX_JWS_LENGTH:
        raise JoseFailure("the JWS is missing or too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise JoseFailure("not a compact JWS")
    try:
        header = strictjson.loads(b64url_decode(parts[0]))
    except ValueError as exc:
        raise JoseFailure("the JWS header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise JoseFailure("the JWS header is not a JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise JoseFailure("the JWS header has no alg")
    return header


def verify_with_keys(
    token: str,
    header: Mapping[str, Any],
    keys: Sequence[Mapping[str, Any]],
    algorithms: Sequence[str] = FAPI_ALGORITHMS,
) -> dict[str, Any]:
    """Verify a compact JWS against candidate public keys and return its JSON claims
    (:func:`verify_jws`, then the payload parsed as a JSON object)."""
    return _claims(verify_jws(token, header, keys, algorithms))


def verify_with_keys_and_key(
    token: str,
    header: Mapping[str, Any],
    keys: Sequence[Mapping[str, Any]],
    algorithms: Sequence[str] = FAPI_ALGORITHMS,
) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """:func:`verify_with_keys`, also returning the registered key that verified the signature
    (evidence: the signer's key, by its RFC 7638 thumbprint, for non-repudiation)."""
    payload, key = _verify(token, header, keys, algorithms)
    return _claims(payload), key


def verify_jws(
    token: str,
    header: Mapping[str, Any],
    keys: Sequence[Mapping[str, Any]],
    algorithms: Sequence[str] = FAPI_ALGORITHMS,
) -> bytes:
    """Verify a compact JWS against candidate public keys and return its payload bytes.

    ``header`` is the output of :func:`read_header` for this token. Only ``algorithms``
    (a subset of the FAPI list) are accepted; ``none`` and MACs never are (FAPI2 5.4.1).
    """
    return _verify(token, header, keys, algorithms)[0]


def _verify(
    token: str,
    header: Mapping[str, Any],
    keys: Sequence[Mapping[str, Any]],
    algorithms: Sequence[str],
) -> tuple[bytes, Mapping[str, Any]]:
    alg = header["alg"]
    if alg not in algorithms or alg not in FAPI_ALGORITHMS:
        raise JoseFailure("the JWS algorithm is not allowed (FAPI2 5.4.1-1b)")
    kid = header.get("kid")
    candidates = select_keys(keys, alg, kid if isinstance(kid, str) else None)
    if not candidates:
        raise JoseFailure("no registered key fits the JWS header (FAPI2 5.4.3)")
    check_header_members(header)
    signing_input, _, signature_part = token.rpartition(".")
    try:
        signature = b64url_decode(signature_part)
        payload = b64url_decode(signing_input.partition(".")[2])
    except ValueError as exc:
        raise JoseFailure("the JWS is malformed") from exc
    if len(payload) > _Registry.max_payload_length:
        raise JoseFailure("the JWS is malformed")
    message = signing_input.encode("ascii")
    for candidate in candidates[:4]:
        if verify_signature(alg, import_public_jwk(candidate), message, signature):
            return payload, candidate
    raise JoseFailure("the JWS signature is invalid")


#: RFC 7515 4.1 header parameters with the JSON type each must have (joserfc's registry checks
#: the same); ``crit`` and RFC 7797 ``b64`` are refused outright: we understand no extension.
_HEADER_TYPES: dict[str, type] = {
    "alg": str,
    "jku": str,
    "jwk": dict,
    "kid": str,
    "x5u": str,
    "x5c": list,
    "x5t": str,
    "x5t#S256": str,
    "typ": str,
    "cty": str,
}


def check_header_members(header: Mapping[str, Any]) -> None:
    """RFC 7515 4.1 member types; RFC 7515 4.1.11 ``crit`` and RFC 7797 ``b64`` refused."""
    if "crit" in header or "b64" in header:
        raise JoseFailure("the JWS header asks for an extension we do not support (RFC 7515 4.1.11)")
    for name, value in header.items():
        kind = _HEADER_TYPES.get(name)
        if kind is not None and not isinstance(value, kind):
            raise JoseFailure(f"the JWS header member {name} has the wrong type")


def verify_signature(alg: str, key: jwk.Key, message: bytes, signature: bytes) -> bool:
    """The signature check itself, straight on ``cryptography`` (design.md 5b: the RS and DPoP
    hot path; joserfc stays the reference in tests/core/test_jws_differential.py).

    ES256: RFC 7518 3.4 (R || S, 64 bytes); PS256: RFC 7518 3.5 (MGF1-SHA256, salt = 32);
    EdDSA: RFC 8037 3.1 (Ed25519)."""
    public = key.public_key
    try:
        if alg == "ES256":
            if len(signature) != 64 or not isinstance(public, ec.EllipticCurvePublicKey):
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public.verify(der, message, _ECDSA_SHA256)
        elif alg == "PS256":
            if not isinstance(public, rsa.RSAPublicKey):
                return False
            public.verify(signature, message, _PSS_SHA256, _SHA256)
        elif alg == "EdDSA":
            if not isinstance(public, ed25519.Ed25519PublicKey):
                return False
            public.verify(signature, message)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _claims(payload: bytes | None) -> dict[str, Any]:
    try:
        claims = strictjson.loads(payload or b"")
    except ValueError as exc:
        raise JoseFailure("the JWS payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise JoseFailure("the JWS payload is not a JSON object")
    return claims


class SigningKey:
    """A private key this party signs with, parsed once and kept (design.md 5b)."""

    def __init__(self, private_jwk: Mapping[str, Any]) -> None:
        self.key = jwk.import_key(dict(private_jwk))
        if not self.key.is_private:
            raise JoseFailure("a signing key must be private")
        public = self.key.as_dict(private=False)
        self.kid: str = str(private_jwk.get("kid") or self.key.thumbprint())
        self.alg: str = str(private_jwk.get("alg") or _default_alg(public))
        if self.alg not in FAPI_ALGORITHMS:
            raise JoseFailure(f"signing alg {self.alg!r} is not allowed")
        self.public_jwk: dict[str, Any] = {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}
        check_public_jwk(self.public_jwk)
        self._registry = registry_for([self.alg])
        # joserfc's per-signature key checks (the algorithm's key type and curve, key_ops), once
        # here: a key that fails them keeps signing through joserfc, which refuses as before.
        self._private: Any = None
        try:
            self._registry.get_alg(self.alg).check_key(self.key)
            private = self.key.get_op_key("sign")
        except (JoseError, ValueError):
            private = None
        if isinstance(private, _PRIVATE_TYPES[self.alg]):
            self._private = private

    @classmethod
    def generate(cls, alg: str = "ES256") -> SigningKey:
        if alg == "ES256":
            key: jwk.Key = jwk.ECKey.generate_key("P-256")
        elif alg == "PS256":
            key = jwk.RSAKey.generate_key(2048)
        elif alg == "EdDSA":
            key = jwk.OKPKey.generate_key("Ed25519")
        else:
            raise JoseFailure(f"cannot generate a key for {alg!r}")
        data = key.as_dict(private=True)
        data["kid"] = key.thumbprint()
        data["alg"] = alg
        return cls(data)

    def public_jwk_without_meta(self) -> dict[str, Any]:
        """The bare public JWK, as a DPoP ``jwk`` header carries it."""
        return dict(self.key.as_dict(private=False))

    def private_jwk(self) -> dict[str, Any]:
        return {**self.key.as_dict(private=True), "kid": self.kid, "alg": self.alg}

    def thumbprint(self) -> str:
        return str(self.key.thumbprint())

    def sign(self, claims: Mapping[str, Any], typ: str, extra_header: Mapping[str, Any] | None = None) -> str:
        """A compact JWS of ``claims`` with an explicit ``typ`` (RFC 8725 3.11)."""
        header: dict[str, Any] = {"alg": self.alg, "typ": typ, **(extra_header or {})}
        if "jwk" not in header:
            header.setdefault("kid", self.kid)
        payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False)
        if self._private is None or "b64" in header or header["alg"] != self.alg:  # RFC 7797, or not our alg
            return jws.serialize_compact(
                header, payload, self.key, algorithms=[self.alg], registry=self._registry
            )
        # Straight on ``cryptography`` (design.md 5b): joserfc's serialize_compact, less its
        # per-call key guessing; the same header checks and the same bytes (the header as joserfc
        # encodes it), verified by joserfc in tests/core/test_jws_differential.py.
        self._registry.check_header(header)
        head = json.dumps(header, ensure_ascii=True, separators=(",", ":"))
        signing_input = f"{b64url_encode(head.encode('ascii'))}.{b64url_encode(payload.encode('utf-8'))}"
        return f"{signing_input}.{b64url_encode(self._sign(signing_input.encode('ascii')))}"

    def _sign(self, message: bytes) -> bytes:
        """ES256: RFC 7518 3.4 (R || S, 32 bytes each); PS256: RFC 7518 3.5 (MGF1-SHA256,
        salt = 32); EdDSA: RFC 8037 3.1 (Ed25519)."""
        private = self._private
        if isinstance(private, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(private.sign(message, _ECDSA_SHA256))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if isinstance(private, rsa.RSAPrivateKey):
            return private.sign(message, _PSS_SHA256, _SHA256)
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        return private.sign(message)


def _default_alg(public: Mapping[str, Any]) -> str:
    return {"RSA": "PS256", "EC": "ES256", "OKP": "EdDSA"}.get(str(public.get("kty")), "")
