"""Metadata (RFC 8414, OIDC Discovery; FAPI2 5.3.2.1-1) and the JWKS (RFC 7517)."""

from __future__ import annotations

from typing import Any

from corridor.core.jose import FAPI_ALGORITHMS
from corridor.server.authority import AuthorizationServer
from corridor.server.clients import AUTH_METHODS, RESPONSE_MODES


def server_metadata(server: AuthorizationServer) -> dict[str, Any]:
    e, s = server.endpoints, server.settings
    algs = list(FAPI_ALGORITHMS)
    # What the AS signs with (ID tokens, JARM, introspection): its active key's alg, which differs
    # from settings.signing_alg after `corridor keys rotate --alg` (JARM 3, RFC 9701 7).
    signs = [server.keys.signing.alg]
    return {
        "issuer": s.issuer,
        "authorization_endpoint": e.authorization,
        "pushed_authorization_request_endpoint": e.par,
        "require_pushed_authorization_requests": True,
        "token_endpoint": e.token,
        "introspection_endpoint": e.introspection,
        "revocation_endpoint": e.revocation,
        "userinfo_endpoint": e.userinfo,
        "jwks_uri": e.jwks,
        "scopes_supported": list(s.scopes),
        "response_types_supported": ["code"],
        # JARM 4.1 / FAPI 2.0 Message Signing: signed authorization responses (jwt = query.jwt).
        "response_modes_supported": list(RESPONSE_MODES),
        "authorization_signing_alg_values_supported": signs,
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "id_token_signing_alg_values_supported": signs,
        "dpop_signing_alg_values_supported": algs,
        "tls_client_certificate_bound_access_tokens": True,  # RFC 8705 3.3
        "mtls_endpoint_aliases": e.mtls_aliases(),  # RFC 8705 5
        "authorization_details_types_supported": server.detail_types.names(),
        # What this AS can make true: a password, a TOTP code ("mfa"), a passkey (WebAuthn).
        "acr_values_supported": [
            level
            for level in s.acr_levels
            if level in ("password", "mfa") or (level == "passkey" and server.passkeys.available)
        ],
        "claims_parameter_supported": False,
        # RFC 9101 10.5, RFC 9126 3: signed request objects, at PAR only.
        "request_parameter_supported": True,
        "request_object_signing_alg_values_supported": algs,
        "require_signed_request_object": s.require_signed_request_object,
        # RFC 9701 7: signed introspection responses.
        "introspection_signing_alg_values_supported": signs,
        "request_uri_parameter_supported": True,
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_supported": ["sub", "preferred_username", "acr", "auth_time"],
    }
