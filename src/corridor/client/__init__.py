"""The FAPI 2.0 client library (C1-C23 of the requirements): configuration from an
authoritative issuer, PAR + PKCE + ``iss`` checks, private_key_jwt or mTLS client
authentication, DPoP- or certificate-bound tokens with nonce handling, refresh, ID token
checks, and an ``httpx.Auth`` for calling APIs."""

from corridor.client.errors import ClientError
from corridor.client.flow import AuthorizationHandle, FapiClient, TokenSet

__all__ = ["AuthorizationHandle", "ClientError", "FapiClient", "TokenSet"]
