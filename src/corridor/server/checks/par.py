"""Checks of the pushed authorization request (RFC 9126, FAPI2 5.3.2.2)."""

from __future__ import annotations

import re

from corridor.core.errors import OAuthError
from corridor.core.pkce import is_valid_s256_challenge
from corridor.core.rules import Rule
from corridor.policy.details import AuthorizationDetailsError
from corridor.server.authority import Exchange
from corridor.server.clients import JARM_MODES, RESPONSE_MODES, ClientMetadataError, check_redirect_uri

#: FAPI2 5.3.2.2-14: nonces of up to 64 characters are accepted; longer ones are refused.
MAX_NONCE = 64
MAX_STATE = 8192
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_ACR = re.compile(r"[\x21-\x7e]{1,64}")
_MAX_AGE = re.compile(r"[0-9]{1,9}")


def require_code_grant_registered(ex: Exchange) -> None:
    """RFC 6749 4.1.2.1, RFC 7591 2: only a client registered for the authorization_code grant
    pushes authorization requests (a client credentials client acts for itself, never a user)."""
    assert ex.client is not None
    if "authorization_code" not in ex.client.grant_types:
        raise OAuthError(
            "unauthorized_client",
            "the client is not registered for the authorization_code grant",
            rule=Rule.RFC_6749_4_1_2_1,
        )


def reject_request_uri_parameter(ex: Exchange) -> None:
    """RFC 9126 2.1: a request_uri must not be pushed."""
    if "request_uri" in ex.form:
        raise OAuthError("invalid_request", "request_uri is not allowed at PAR", rule=Rule.RFC_9126_2_1)


def require_response_type_code(ex: Exchange) -> None:
    """FAPI2 5.3.2.2-1."""
    response_type = ex.form.get("response_type")
    if response_type is None:
        raise OAuthError("invalid_request", "response_type is required", rule=Rule.FAPI2_5_3_2_2_1)
    if response_type != "code":
        raise OAuthError("unsupported_response_type", "only response_type=code", rule=Rule.FAPI2_5_3_2_2_1)


def check_response_mode(ex: Exchange) -> None:
    """OAuth Multiple Response Types 2.1, JARM 2.3: ``query``, or a signed response (``jwt``, which
    for response_type code is ``query.jwt``); FAPI2 MS 5.3.3: only a mode the client registered
    in ``response_modes``; FAPI2 MS 5.4.1: only JARM when the server requires it; JARM 3: the
    JWT's alg is the client's ``authorization_signed_response_alg``.

    Unknown modes (fragment, form_post, their JWT forms) are 400 ``invalid_request``, as this server
    answers code responses in the query only (oidc-provider says ``unsupported_response_mode``, an
    unregistered code). An absent mode is ``query`` (RFC 6749 4.1.2, as oidc-provider resolves it),
    so a client registered for JARM only must send ``response_mode=jwt`` (FAPI2 MS 5.4.2-1; the
    OIDF suite always does). Registered modes are compared exactly: ``jwt`` does not admit
    ``query.jwt`` (oidc-provider ``responseModeAllowed``)."""
    assert ex.client is not None
    requested = ex.form.get("response_mode")
    if requested is not None and requested not in RESPONSE_MODES:
        raise OAuthError(
            "invalid_request",
            f"response_mode is not supported; use {', '.join(RESPONSE_MODES)}",
            rule=Rule.OAUTH_MULTIPLE_RESPONSE_TYPES_2_1,
        )
    mode = requested or "query"
    if ex.server.settings.require_signed_authorization_response and mode not in JARM_MODES:
        raise OAuthError(
            "invalid_request",
            "this server answers with signed authorization responses only: send response_mode=jwt "
            "(FAPI2 MS 5.4.1)",
            rule=Rule.FAPI2_MS_5_4_1,
        )
    if ex.client.response_modes and mode not in ex.client.response_modes:
        raise OAuthError(
            "invalid_request",
            f"response_mode {mode} is not registered for this client (FAPI2 MS 5.3.3 response_modes)",
            rule=Rule.FAPI2_MS_5_3_3,
        )
    if mode in JARM_MODES:
        wanted = ex.client.authorization_signed_response_alg
        signing = ex.server.keys.signing.alg
        if wanted is not None and wanted != signing:
            # One active key signs (server/keys.py); a response it cannot sign is refused now,
            # not discovered by the client after the user has consented.
            raise OAuthError(
                "invalid_request",
                f"authorization_signed_response_alg {wanted} is not this server's signing alg {signing}",
                rule=Rule.JARM_3,
            )
    if requested is not None:
        ex.evidence.detail["response_mode"] = requested


def require_redirect_uri(ex: Exchange) -> None:
    """FAPI2 5.3.2.2-6 (present), 5.3.2.2-8 (https or loopback), RFC 6749 3.1.2.3 (registered)."""
    uri = ex.form.get("redirect_uri")
    if not uri:
        raise OAuthError("invalid_request", "redirect_uri is required", rule=Rule.FAPI2_5_3_2_2_6)
    try:
        check_redirect_uri(uri)
    except ClientMetadataError as exc:
        raise OAuthError("invalid_request", str(exc), rule=Rule.FAPI2_5_3_2_2_8) from exc
    assert ex.client is not None
    if uri not in ex.client.redirect_uris:
        raise OAuthError(
            "invalid_request", "redirect_uri is not registered for this client", rule=Rule.RFC_6749_3_1_2_3
        )
    ex.evidence.redirect_uri = uri


def require_pkce_s256(ex: Exchange) -> None:
    """FAPI2 5.3.2.2-5: PKCE with S256 only."""
    challenge = ex.form.get("code_challenge")
    method = ex.form.get("code_challenge_method")
    if not challenge:
        raise OAuthError("invalid_request", "code_challenge is required", rule=Rule.FAPI2_5_3_2_2_5)
    if method != "S256":
        raise OAuthError("invalid_request", "code_challenge_method must be S256", rule=Rule.FAPI2_5_3_2_2_5)
    if not is_valid_s256_challenge(challenge):
        raise OAuthError("invalid_request", "code_challenge is not an S256 challenge", rule=Rule.RFC_7636_4_2)


def check_scope(ex: Exchange) -> None:
    """RFC 6749 3.3: only scopes registered for the client."""
    assert ex.client is not None
    raw = ex.form.get("scope", "")
    scopes = raw.split(" ") if raw else []
    if any(not _SCOPE_TOKEN.fullmatch(s) for s in scopes):
        raise OAuthError("invalid_scope", "scope is malformed", rule=Rule.RFC_6749_3_3)
    unknown = [s for s in scopes if s not in ex.client.scope]
    if unknown:
        raise OAuthError(
            "invalid_scope", f"scope not allowed for this client: {' '.join(unknown)}", rule=Rule.RFC_6749_3_3
        )
    ex.scope = " ".join(dict.fromkeys(scopes))
    ex.evidence.scope = ex.scope


def check_state_and_nonce(ex: Exchange) -> None:
    """FAPI2 5.3.2.2 Note 4 (long state accepted), 5.3.2.2-14 (nonce up to 64 characters)."""
    if len(ex.form.get("state", "")) > MAX_STATE:
        raise OAuthError("invalid_request", "state is too long", rule=Rule.RFC_6749_4_1_1)
    if len(ex.form.get("nonce", "")) > MAX_NONCE:
        raise OAuthError("invalid_request", "nonce is longer than 64 characters", rule=Rule.FAPI2_5_3_2_2_14)


def check_authentication_request(ex: Exchange) -> None:
    """OIDC Core 3.1.2.1: max_age, acr_values and prompt are well formed."""
    max_age = ex.form.get("max_age")
    if max_age is not None and not _MAX_AGE.fullmatch(max_age):
        raise OAuthError(
            "invalid_request", "max_age must be a non-negative integer", rule=Rule.OIDC_CORE_3_1_2_1
        )
    acr_values = ex.form.get("acr_values", "").split()
    if any(not _ACR.fullmatch(a) for a in acr_values):
        raise OAuthError("invalid_request", "acr_values is malformed", rule=Rule.OIDC_CORE_3_1_2_1)
    prompt = ex.form.get("prompt", "").split()
    if any(p not in ("none", "login", "consent") for p in prompt) or ("none" in prompt and len(prompt) > 1):
        raise OAuthError("invalid_request", "unsupported prompt value", rule=Rule.OIDC_CORE_3_1_2_1)


def check_resource(ex: Exchange) -> None:
    """RFC 8707 2: resources are registered resource servers the client may use."""
    assert ex.client is not None
    requested = ex.form.multi.get("resource", [])
    known = ex.server.resource_servers()
    for resource in requested:
        if resource not in known or (ex.client.resources and resource not in ex.client.resources):
            raise OAuthError(
                "invalid_target", "resource is unknown or not allowed for this client", rule=Rule.RFC_8707_2
            )
    ex.resources = list(dict.fromkeys(requested))
    ex.evidence.resource = ex.resources or None


def check_authorization_details(ex: Exchange) -> None:
    """RFC 9396 5: known types and well-formed entries, else invalid_authorization_details."""
    raw = ex.form.get("authorization_details")
    if raw is None:
        ex.authorization_details = None
        return
    try:
        details = ex.server.detail_types.parse(raw)
    except AuthorizationDetailsError as exc:
        raise OAuthError("invalid_authorization_details", str(exc), rule=Rule.RFC_9396_5) from exc
    ex.authorization_details = details
    ex.evidence.authorization_details = details


def require_something_to_authorize(ex: Exchange) -> None:
    """RFC 9396 3 / RFC 6749 3.3: a request asks for a scope or authorization details."""
    if not ex.scope and not ex.authorization_details:
        raise OAuthError("invalid_scope", "request a scope or authorization_details", rule=Rule.RFC_6749_3_3)
