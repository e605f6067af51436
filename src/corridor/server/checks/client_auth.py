"""Client authentication at PAR, token, introspection and revocation.

FAPI2 5.3.2.1-6: ``private_key_jwt`` (OIDC Core 9) or mutual TLS (RFC 8705 2:
``tls_client_auth`` and ``self_signed_tls_client_auth``), nothing else.
FAPI2 5.3.2.1-8: the assertion ``aud`` is the issuer identifier, as a string, only.
"""

from __future__ import annotations

import math
from typing import Any

from corridor.core import strictjson
from corridor.core.b64 import b64url_decode
from corridor.core.errors import InvalidClient
from corridor.core.identifiers import is_text_identifier, is_vschar_identifier
from corridor.core.jose import FAPI_ALGORITHMS, JoseFailure, read_header, verify_with_keys
from corridor.core.randomness import token_hash
from corridor.core.rules import Rule
from corridor.core.x509 import der, subject_matches, thumbprint_s256
from corridor.server.authority import Exchange
from corridor.server.clients import MTLS_AUTH_METHODS
from corridor.server.mtls import registered

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: RFC 8725 3.11: explicit types we accept for a client assertion (absent is tolerated).
ASSERTION_TYPES = (None, "JWT", "client-authentication+jwt")


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        claims = strictjson.loads(b64url_decode(token.split(".")[1]))
    except (ValueError, IndexError) as exc:
        raise InvalidClient("the client assertion payload is not JSON", rule=Rule.RFC_7523_3) from exc
    if not isinstance(claims, dict):
        raise InvalidClient("the client assertion payload is not a JSON object", rule=Rule.RFC_7523_3)
    return claims


def check_client_id(client_id: object) -> str:
    """Issue 13 B8, RFC 6749 A.1: a client_id (form or assertion iss) is 1 to 255 visible ASCII
    characters, checked before it reaches the store or the record."""
    if not is_vschar_identifier(client_id):
        raise InvalidClient("the client_id is malformed", rule=Rule.ISSUE_13_B8_RFC_6749_A_1)
    assert isinstance(client_id, str)
    return client_id


def check_assertion_kid(header: dict[str, Any]) -> None:
    """Issue 13 B8, RFC 7515 4.1.4: a kid, when sent, is a short string without control characters."""
    if "kid" in header and not is_text_identifier(header["kid"]):
        raise InvalidClient("the client assertion kid is malformed", rule=Rule.ISSUE_13_B8_RFC_7515_4_1_4)


def authenticate_client(ex: Exchange) -> None:
    """FAPI2 5.3.2.1-3/6, 5.3.2.1-8, 5.3.2.1-13, OIDC Core 9: private_key_jwt, strictly."""
    form, settings = ex.form, ex.server.settings
    authorization = ex.headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        raise InvalidClient("client secrets are not accepted", rule=Rule.FAPI2_5_3_2_1_6, basic=True)
    if "client_secret" in form:
        raise InvalidClient("client secrets are not accepted", rule=Rule.FAPI2_5_3_2_1_6)
    assertion_type = form.get("client_assertion_type")
    assertion = form.get("client_assertion")
    if assertion_type is None and assertion is None:
        authenticate_mtls_client(ex)
        return
    if assertion_type != JWT_BEARER or not assertion:
        raise InvalidClient(
            "client_assertion_type must be jwt-bearer with a client_assertion", rule=Rule.RFC_7523_2_2
        )
    try:
        header = read_header(assertion)
    except JoseFailure as exc:
        raise InvalidClient(f"the client assertion is malformed: {exc}", rule=Rule.RFC_7523_3) from exc
    if header["alg"] not in FAPI_ALGORITHMS:
        raise InvalidClient("the client assertion alg is not allowed", rule=Rule.FAPI2_5_4_1_1B)
    if header.get("typ") not in ASSERTION_TYPES:
        raise InvalidClient("the client assertion has the wrong typ", rule=Rule.RFC_8725_3_11)
    check_assertion_kid(header)
    unverified = _unverified_claims(assertion)
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or not client_id:
        raise InvalidClient("the client assertion has no iss", rule=Rule.OIDC_CORE_9)
    check_client_id(client_id)
    if "client_id" in form and form["client_id"] != client_id:
        raise InvalidClient("client_id does not match the assertion issuer", rule=Rule.RFC_7521_4_2)
    ex.evidence.client_id = client_id
    client = ex.server.clients.get(client_id)
    if client is None or client.token_endpoint_auth_method != "private_key_jwt":
        raise InvalidClient("unknown client or wrong authentication method", rule=Rule.FAPI2_5_3_2_1_6)
    try:
        keys = ex.server.clients.keys(client)
        try:
            claims = verify_with_keys(assertion, header, keys)
        except JoseFailure:
            if client.jwks_uri is None:
                raise
            claims = verify_with_keys(assertion, header, ex.server.clients.keys(client, refresh=True))
    except JoseFailure as exc:
        raise InvalidClient(f"the client assertion is not valid: {exc}", rule=Rule.OIDC_CORE_9) from exc
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise InvalidClient("iss and sub must both be the client_id", rule=Rule.OIDC_CORE_9)
    aud = claims.get("aud")
    if not isinstance(aud, str) or aud != settings.issuer:
        raise InvalidClient("aud must be the issuer identifier, as a string", rule=Rule.FAPI2_5_3_2_1_8)
    now = ex.now
    exp = claims.get("exp")
    if not _is_number(exp):
        raise InvalidClient("the client assertion has no exp", rule=Rule.OIDC_CORE_9)
    assert isinstance(exp, int | float)
    if exp <= now:
        raise InvalidClient("the client assertion has expired", rule=Rule.OIDC_CORE_9)
    if exp > now + settings.max_assertion_lifetime:
        raise InvalidClient("the client assertion lives too long", rule=Rule.RFC_7523_3)
    for claim in ("iat", "nbf"):
        value = claims.get(claim)
        if value is not None and (not _is_number(value) or value > now + settings.max_clock_skew):
            raise InvalidClient(f"the client assertion {claim} is in the future", rule=Rule.FAPI2_5_3_2_1_13)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidClient("the client assertion needs a jti", rule=Rule.OIDC_CORE_9)
    if not is_text_identifier(jti):
        raise InvalidClient("the client assertion jti is malformed", rule=Rule.ISSUE_13_B8_RFC_7519_4_1_7)
    replayed = InvalidClient("the client assertion was already used", rule=Rule.OIDC_CORE_9_RFC_7523_3)
    ex.spend_once("a:" + token_hash(f"{client_id}\x00{jti}"), exp + 1, replayed)
    ex.client = client


def authenticate_mtls_client(ex: Exchange) -> None:
    """RFC 8705 2: the client_id parameter (M1) and the TLS client certificate (M2, M3)."""
    client_id = ex.form.get("client_id")
    if not client_id:
        raise InvalidClient("client authentication is required", rule=Rule.FAPI2_5_3_2_1_3_RFC_8705_2)
    ex.evidence.client_id = check_client_id(client_id)
    client = ex.server.clients.get(client_id)
    if client is None or client.token_endpoint_auth_method not in MTLS_AUTH_METHODS:
        raise InvalidClient("unknown client or wrong authentication method", rule=Rule.FAPI2_5_3_2_1_3)
    certificate = ex.certificate
    if certificate is None:
        raise InvalidClient(
            "a TLS client certificate is required (use the mTLS endpoint)", rule=Rule.RFC_8705_2
        )
    if client.token_endpoint_auth_method == "self_signed_tls_client_auth":
        if not registered(der(certificate), client):
            raise InvalidClient("the certificate is not one the client registered", rule=Rule.RFC_8705_2_2)
    else:
        assert client.tls_subject is not None
        if not ex.server.pki.verify(certificate, [], ex.now):
            raise InvalidClient("the certificate does not chain to a trusted CA", rule=Rule.RFC_8705_2_1)
        parameter, value = client.tls_subject
        if not subject_matches(certificate, parameter, value):
            raise InvalidClient(
                "the certificate subject does not match the registration", rule=Rule.RFC_8705_2_1_2
            )
    ex.evidence.detail["client_certificate"] = thumbprint_s256(certificate)
    ex.client = client


def _is_number(value: Any) -> bool:
    """A JSON NumericDate we can compare and store: finite and within a sane range."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < 1e11
    )
