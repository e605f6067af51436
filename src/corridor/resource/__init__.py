"""Resource-server protection for any FAPI 2.0 authorization server (FAPI2 5.3.4).

Verify the access token (RFC 9068 JWTs against the issuer's JWKS), its sender constraint
(DPoP, RFC 9449 7; or mTLS, RFC 8705 3), and that it covers the request (scopes,
authorization_details, RFC 9470 step-up); answer with exact RFC 6750 / RFC 9449 challenges
that name the RFC 9728 metadata; record every decision.
"""

from corridor.resource.guard import Requirement, ResourceGuard, ResourceSettings
from corridor.resource.tokens import AccessToken

__all__ = ["AccessToken", "Requirement", "ResourceGuard", "ResourceSettings"]
