"""Checks of a signed request object pushed to PAR (RFC 9101 with RFC 9126 3; FAPI 2.0 Message
Signing 5.3.1: the AS shall support, require and verify signed request objects at PAR).

The object is read, its header and signature checked with the authenticated client's registered
keys, its claims checked, and then its claims *are* the authorization request: the outside form
keeps only the client authentication parameters (RFC 9126 3, RFC 9101 5 and 6.3), so every later
PAR check runs on what the client signed. Every failure is 400 ``invalid_request_object``, with a
description naming the rule; an unsigned request from a client that must sign is 400
``invalid_request`` (the OIDF suite's ensure-unsigned-request-at-par-endpoint-fails expects it,
and oidc-provider answers it).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from corridor.core.errors import OAuthError
from corridor.core.identifiers import is_text_identifier
from corridor.core.jose import (
    FAPI_ALGORITHMS,
    JoseFailure,
    jwk_thumbprint,
    read_header,
    verify_with_keys_and_key,
)
from corridor.core.randomness import token_hash
from corridor.core.rules import Rule
from corridor.core.text import escape_controls
from corridor.server.authority import Exchange
from corridor.server.forms import MAX_FIELDS, Form

#: FAPI 2.0 Message Signing 5.3.1-3/-4: nbf at most 60 minutes old, exp at most 60 minutes after it.
MAX_AGE = 3600
#: RFC 7515 4.1.9 / RFC 9101 4: the explicit types accepted, compared case-insensitively with any
#: ``application/`` prefix removed; no ``typ`` at all is accepted too (the OIDF suite sends none).
ACCEPTED_TYPES = frozenset({"jwt", "oauth-authz-req+jwt"})
#: RFC 9126 3: the only outside parameters besides ``request``: those of client authentication.
CLIENT_AUTHENTICATION = ("client_assertion", "client_assertion_type", "client_id")
#: RFC 7519 4.1: claims about the JWT itself, not authorization parameters.
JWT_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})
#: How much of an ignored parameter's name the evidence record keeps (as at /authorize).
IGNORED_NAME_LENGTH = 64


@dataclass
class RequestObject:
    """The ``request`` of one PAR request as it passes its checks."""

    jws: str
    header: dict[str, Any]
    #: The verified claims (empty until verify_request_object_signature).
    claims: dict[str, Any] = field(default_factory=dict)
    #: The registered public key that verified the signature.
    key: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """The evidence identifier of the object: SHA-256 of the compact JWS, hex."""
        return hashlib.sha256(self.jws.encode("ascii")).hexdigest()


def invalid_request_object(description: str, rule: str) -> OAuthError:
    return OAuthError("invalid_request_object", description, rule=rule)


def require_signed_request_object(ex: Exchange) -> None:
    """FAPI 2.0 Message Signing 5.3.1-1, RFC 9101 10.5: a client registered with
    ``require_signed_request_object`` (or every client, by the server-wide setting) pushes a
    signed request object; an unsigned one is refused with ``invalid_request``."""
    assert ex.client is not None
    required = ex.client.require_signed_request_object or ex.server.settings.require_signed_request_object
    if required and "request" not in ex.form:
        raise OAuthError(
            "invalid_request",
            "a signed request object is required for this client (RFC 9101 10.5, "
            "FAPI 2.0 Message Signing 5.3.1-1)",
            rule=Rule.FAPI2_MS_5_3_1_1_RFC_9101_10_5,
        )


def read_request_object(ex: Exchange) -> None:
    """RFC 9101 6.2: the ``request`` parameter is a compact JWS with a readable header."""
    jws = ex.form.get("request")
    if jws is None:
        return
    try:
        header = read_header(jws)
        jws.encode("ascii")
    except (JoseFailure, UnicodeEncodeError) as exc:
        raise invalid_request_object(
            f"the request object is not a compact JWS: {exc} (RFC 9101 6.2)",
            Rule.FAPI2_MS_5_3_1_1_RFC_9101_6_2,
        ) from exc
    ex.request_object = RequestObject(jws, header)


def check_request_object_alg(ex: Exchange) -> None:
    """FAPI2 5.4.1-1b: signed with PS256, ES256 or EdDSA; never ``none``, never a MAC."""
    if ex.request_object is None:
        return
    if ex.request_object.header["alg"] not in FAPI_ALGORITHMS:
        raise invalid_request_object(
            "the request object's alg must be PS256, ES256 or EdDSA (FAPI2 5.4.1-1b)", Rule.FAPI2_5_4_1_1B
        )


def check_request_object_typ(ex: Exchange) -> None:
    """FAPI 2.0 Message Signing 5.3.1-5, RFC 9101 4: ``typ`` absent, ``JWT`` or
    ``oauth-authz-req+jwt`` (RFC 7515 4.1.9: case-insensitive, ``application/`` optional)."""
    if ex.request_object is None:
        return
    typ = ex.request_object.header.get("typ")
    if typ is None:
        return
    kind = typ.lower() if isinstance(typ, str) else ""
    kind = kind.removeprefix("application/")
    if kind not in ACCEPTED_TYPES:
        raise invalid_request_object(
            "the request object's typ must be oauth-authz-req+jwt or JWT "
            "(FAPI 2.0 Message Signing 5.3.1-5, RFC 9101 4)",
            Rule.FAPI2_MS_5_3_1_5_RFC_9101_4,
        )


def verify_request_object_signature(ex: Exchange) -> None:
    """FAPI 2.0 Message Signing 5.3.1-1, RFC 9101 6.2: the signature verifies with a key the
    authenticated client registered (``jwks``, or ``jwks_uri`` fetched again once on a miss)."""
    ro, client = ex.request_object, ex.client
    if ro is None:
        return
    assert client is not None
    refusal = "the request object's signature does not verify with the client's registered keys"
    try:
        if client.jwks is None and client.jwks_uri is None:
            raise JoseFailure("the client registered no keys")
        keys = ex.server.clients.keys(client)
        try:
            claims, key = verify_with_keys_and_key(ro.jws, ro.header, keys)
        except JoseFailure:
            if client.jwks_uri is None:
                raise
            claims, key = verify_with_keys_and_key(
                ro.jws, ro.header, ex.server.clients.keys(client, refresh=True)
            )
    except JoseFailure as exc:
        raise invalid_request_object(
            f"{refusal}: {exc} (FAPI 2.0 Message Signing 5.3.1-1, RFC 9101 6.2)",
            Rule.FAPI2_MS_5_3_1_1_RFC_9101_6_2,
        ) from exc
    ro.claims, ro.key = claims, dict(key)


def check_request_object_issuer(ex: Exchange) -> None:
    """RFC 9101 4, OIDC Core 6.1: a signed object's ``iss`` is the client_id (required: the
    OIDF suite and oauth4webapi send it, oidc-provider requires it)."""
    if ex.request_object is None:
        return
    assert ex.client is not None
    if ex.request_object.claims.get("iss") != ex.client.client_id:
        raise invalid_request_object(
            "the request object's iss must be the authenticated client's client_id (RFC 9101 4)",
            Rule.RFC_9101_4_OIDC_CORE_6_1,
        )


def check_request_object_client_id(ex: Exchange) -> None:
    """RFC 9126 3, RFC 9101 5: a ``client_id`` claim, when present, is the authenticated client
    (not required: ``iss`` already names the signer)."""
    if ex.request_object is None:
        return
    assert ex.client is not None
    claims = ex.request_object.claims
    if "client_id" in claims and claims["client_id"] != ex.client.client_id:
        raise invalid_request_object(
            "the request object's client_id must be the authenticated client (RFC 9126 3)", Rule.RFC_9126_3
        )


def check_request_object_audience(ex: Exchange) -> None:
    """FAPI 2.0 Message Signing 5.3.1-2, RFC 9101 4: ``aud`` is the issuer identifier, or an
    array containing it (the PAR endpoint URL is not the issuer)."""
    if ex.request_object is None:
        return
    aud = ex.request_object.claims.get("aud")
    issuer = ex.server.settings.issuer
    if not (aud == issuer or (isinstance(aud, list) and issuer in aud)):
        raise invalid_request_object(
            "the request object's aud must be the issuer (FAPI 2.0 Message Signing 5.3.1-2, RFC 9101 4)",
            Rule.FAPI2_MS_5_3_1_2_RFC_9101_4,
        )


def check_request_object_expiry(ex: Exchange) -> None:
    """FAPI 2.0 Message Signing 5.3.1-4, RFC 7519 4.1.4: ``exp`` is required and in the future."""
    if ex.request_object is None:
        return
    exp = ex.request_object.claims.get("exp")
    if not is_numeric_date(exp):
        raise invalid_request_object(
            "the request object needs an exp (FAPI 2.0 Message Signing 5.3.1-4)",
            Rule.FAPI2_MS_5_3_1_4_RFC_7519_4_1_4,
        )
    if exp <= ex.now:
        raise invalid_request_object(
            "the request object has expired (RFC 7519 4.1.4)", Rule.FAPI2_MS_5_3_1_4_RFC_7519_4_1_4
        )


def check_request_object_not_before(ex: Exchange) -> None:
    """FAPI 2.0 Message Signing 5.3.1-3, RFC 7519 4.1.5: ``nbf`` is required, no more than 60
    minutes in the past, and not in the future beyond the allowed clock skew."""
    if ex.request_object is None:
        return
    nbf = ex.request_object.claims.get("nbf")
    rule = Rule.FAPI2_MS_5_3_1_3_RFC_7519_4_1_5
    if not is_numeric_date(nbf):
        raise invalid_request_object(
            "the request object needs an nbf (FAPI 2.0 Message Signing 5.3.1-3)", rule
        )
    if nbf < ex.now - MAX_AGE:
        raise invalid_request_object(
            "the request object's nbf is more than 60 minutes in the past (FAPI 2.0 Message Signing 5.3.1-3)",
            rule,
        )
    if nbf > ex.now + ex.server.settings.max_clock_skew:
        raise invalid_request_object("the request object's nbf is in the future (RFC 7519 4.1.5)", rule)


def check_request_object_lifetime(ex: Exchange) -> None:
    """FAPI 2.0 Message Signing 5.3.1-4: ``exp`` is after ``nbf``, by 60 minutes at most."""
    if ex.request_object is None:
        return
    claims = ex.request_object.claims
    if not 0 < claims["exp"] - claims["nbf"] <= MAX_AGE:
        raise invalid_request_object(
            "the request object's exp must be after nbf by no more than 60 minutes "
            "(FAPI 2.0 Message Signing 5.3.1-4)",
            Rule.FAPI2_MS_5_3_1_4,
        )


def reject_nested_request(ex: Exchange) -> None:
    """RFC 9101 4: a request object contains neither ``request`` nor ``request_uri``."""
    if ex.request_object is None:
        return
    if "request" in ex.request_object.claims or "request_uri" in ex.request_object.claims:
        raise invalid_request_object(
            "the request object must not contain request or request_uri (RFC 9101 4)", Rule.RFC_9101_4
        )


def spend_request_object_jti(ex: Exchange) -> None:
    """RFC 7519 4.1.7: a request object with a ``jti`` is accepted once (the same signed request
    cannot be pushed twice); without one it is not tracked (the OIDF suite sends none)."""
    ro, client = ex.request_object, ex.client
    if ro is None or "jti" not in ro.claims:
        return
    assert client is not None
    jti = ro.claims["jti"]
    if not is_text_identifier(jti):
        raise invalid_request_object(
            "the request object's jti is malformed (RFC 7519 4.1.7)", Rule.RFC_7519_4_1_7
        )
    replayed = invalid_request_object(
        "the request object was already pushed (RFC 7519 4.1.7)", Rule.RFC_7519_4_1_7
    )
    ex.spend_once("r:" + token_hash(f"{client.client_id}\x00{jti}"), ro.claims["exp"] + 1, replayed)


def use_request_object_parameters(ex: Exchange) -> None:
    """RFC 9101 5 and 6.3, RFC 9126 3: the object's claims are the authorization parameters;
    outside it only client authentication counts, every other parameter is ignored (and named
    in the record, never its value), so the later checks see only what the client signed."""
    ro = ex.request_object
    if ro is None:
        return
    assert ex.client is not None
    kept = [(name, ex.form[name]) for name in CLIENT_AUTHENTICATION if name in ex.form]
    outside = {name for name, _ in kept}
    pairs = kept + [
        pair
        for name, value in ro.claims.items()
        if name not in JWT_CLAIMS and name not in outside and name not in CLIENT_AUTHENTICATION[:2]
        for pair in _parameters(name, value)
    ]
    if len(pairs) > MAX_FIELDS:
        raise invalid_request_object(
            "the request object has too many parameters (RFC 9101 6.3)", Rule.RFC_9101_6_3
        )
    ignored = sorted(
        {
            escape_controls(name)[:IGNORED_NAME_LENGTH]
            for name in [*ex.form, *ex.form.multi]
            if name != "request" and name not in outside
        }
    )
    ex.form = Form(pairs)
    if ignored:
        ex.evidence.detail["ignored_parameters"] = ignored
    ex.evidence.detail["request_object"] = {
        "sha256": ro.sha256,
        "kid": ro.header.get("kid"),
        "alg": ro.header["alg"],
        "signer": ex.client.client_id,
        "key_thumbprint": jwk_thumbprint(ro.key),
        "jti": ro.claims.get("jti"),
    }


def _parameters(name: str, value: Any) -> list[tuple[str, str]]:
    """RFC 9101 6.3: one claim as form parameters. Strings as they are; JSON structures that
    parameters carry as JSON text (``authorization_details``, OIDC ``claims``) as their JSON;
    ``max_age`` as a number; ``resource`` as one or several values (RFC 8707 2)."""
    if isinstance(value, str):
        return [(name, value)]
    if name == "authorization_details" and isinstance(value, list):
        return [(name, json.dumps(value, separators=(",", ":"), ensure_ascii=False))]
    if name == "claims" and isinstance(value, dict):
        return [(name, json.dumps(value, separators=(",", ":"), ensure_ascii=False))]
    if name == "max_age" and isinstance(value, int) and not isinstance(value, bool):
        return [(name, str(value))]
    if name == "resource" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [(name, v) for v in value]
    shown = escape_controls(name)[:IGNORED_NAME_LENGTH]
    raise invalid_request_object(
        f"the request object's {shown} has a value of the wrong type (RFC 9101 6.3)", Rule.RFC_9101_6_3
    )


def is_numeric_date(value: object) -> TypeGuard[int | float]:
    """RFC 7519 2 NumericDate we can compare and store: a finite number in a sane range."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < 1e11
    )
