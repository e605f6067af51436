"""The pushed authorization request endpoint (RFC 9126, FAPI2 5.3.2.2-2)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.core.randomness import new_secret_token, token_hash
from corridor.core.x509 import thumbprint_s256
from corridor.server.authority import Exchange
from corridor.server.checks import run
from corridor.server.checks.client_auth import authenticate_client
from corridor.server.checks.dpop import bind_dpop_key, check_dpop_proof
from corridor.server.checks.par import (
    check_authentication_request,
    check_authorization_details,
    check_resource,
    check_response_mode,
    check_scope,
    check_state_and_nonce,
    reject_request_uri_parameter,
    require_code_grant_registered,
    require_pkce_s256,
    require_redirect_uri,
    require_response_type_code,
    require_something_to_authorize,
)
from corridor.server.checks.request_object import (
    check_request_object_alg,
    check_request_object_audience,
    check_request_object_client_id,
    check_request_object_expiry,
    check_request_object_issuer,
    check_request_object_lifetime,
    check_request_object_not_before,
    check_request_object_typ,
    read_request_object,
    reject_nested_request,
    require_signed_request_object,
    spend_request_object_jti,
    use_request_object_parameters,
    verify_request_object_signature,
)
from corridor.server.responses import json_response

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"

PUSHED_AUTHORIZATION = (
    check_dpop_proof,  # RFC 9449 4.3, 8 (before the assertion, so a nonce retry costs no jti)
    authenticate_client,  # FAPI2 5.3.2.1-6, 5.3.2.2-4
    require_code_grant_registered,  # RFC 6749 4.1.2.1
    reject_request_uri_parameter,  # RFC 9126 2.1
    # FAPI 2.0 Message Signing 5.3.1, RFC 9101, RFC 9126 3: a signed request object.
    require_signed_request_object,  # FAPI2 MS 5.3.1-1, RFC 9101 10.5
    read_request_object,  # RFC 9101 6.2
    check_request_object_alg,  # FAPI2 5.4.1-1b
    check_request_object_typ,  # FAPI2 MS 5.3.1-5, RFC 9101 4
    verify_request_object_signature,  # FAPI2 MS 5.3.1-1, RFC 9101 6.2
    check_request_object_issuer,  # RFC 9101 4
    check_request_object_client_id,  # RFC 9126 3
    check_request_object_audience,  # FAPI2 MS 5.3.1-2
    check_request_object_expiry,  # FAPI2 MS 5.3.1-4
    check_request_object_not_before,  # FAPI2 MS 5.3.1-3
    check_request_object_lifetime,  # FAPI2 MS 5.3.1-4
    reject_nested_request,  # RFC 9101 4
    spend_request_object_jti,  # RFC 7519 4.1.7
    use_request_object_parameters,  # RFC 9101 6.3, RFC 9126 3: from here on, the object's content
    require_response_type_code,  # FAPI2 5.3.2.2-1
    check_response_mode,  # JARM 2.3, FAPI2 MS 5.3.3
    require_redirect_uri,  # FAPI2 5.3.2.2-6, -8
    require_pkce_s256,  # FAPI2 5.3.2.2-5
    check_scope,  # RFC 6749 3.3
    check_state_and_nonce,  # FAPI2 5.3.2.2-14
    check_authentication_request,  # OIDC Core 3.1.2.1
    check_resource,  # RFC 8707 2
    check_authorization_details,  # RFC 9396 5
    require_something_to_authorize,
    bind_dpop_key,  # RFC 9449 10.1, FAPI2 5.3.2.1-12
)

#: The pushed parameters kept for the authorization endpoint.
KEPT = (
    "redirect_uri",
    "state",
    "nonce",
    "code_challenge",
    "max_age",
    "acr_values",
    "prompt",
    "response_mode",  # JARM 2.3: how the authorization response travels
)


def pushed_authorization(ex: Exchange) -> Response:
    run(PUSHED_AUTHORIZATION, ex)
    assert ex.client is not None
    server = ex.server
    reference = new_secret_token()
    parameters: dict[str, Any] = {name: ex.form[name] for name in KEPT if name in ex.form}
    parameters.update(
        scope=ex.scope,
        resources=ex.resources,
        authorization_details=ex.authorization_details,
    )
    if ex.client.sender_constraint == "mtls" and ex.certificate is not None:
        # Issue 18: the certificate this request came with (RFC 8705 3.1 x5t#S256), for the
        # consent page's words and the trail; the token is bound to the token request's own.
        parameters["certificate_thumbprint"] = thumbprint_s256(ex.certificate)
    lifetime = server.settings.par_lifetime
    # The pushed request's id in the trail: the hash of its reference (never the reference).
    ex.evidence.detail["par"] = token_hash(reference)
    with ex.unit_of_work() as uow:  # the request, its proofs' jti and its record: one transaction
        uow.requests.save_pushed(
            token_hash(reference),
            ex.client.client_id,
            parameters,
            ex.dpop_jkt,
            ex.now,
            ex.now + lifetime,
        )
        if ex.request_object is not None:  # the signed request itself, as evidence (issue 17)
            ro = ex.request_object
            uow.messages.keep(ro.sha256, "request_object", ex.client.client_id, ro.jws, ex.now)
        server.audit.append(ex.evidence, Event.PAR, Outcome.ACCEPTED, ex.now, conn=uow)
    # RFC 9126 2.2: 201 Created; FAPI2 5.3.2.2-12: expires_in below 600.
    return json_response({"request_uri": REQUEST_URI_PREFIX + reference, "expires_in": lifetime}, status=201)
