"""The names an evidence record uses for what happened (``event``) and how it ended (``outcome``).

String enumerations: a record stores the plain value, tests and readers import the names, and
a misspelt event is a NameError instead of a record nobody finds (issue 15, 5)."""

from __future__ import annotations

from enum import StrEnum


class Event(StrEnum):
    """What a record is about: an endpoint, a step of the interaction, or a resource decision."""

    PAR = "par"
    AUTHORIZE = "authorize"
    INTERACTION = "interaction"
    LOGIN = "login"
    PASSKEY = "passkey"
    CONSENT = "consent"
    CODE = "code"
    CODE_REUSE_DETECTED = "code.reuse_detected"
    TOKEN = "token"
    TOKEN_AUTHORIZATION_CODE = "token.authorization_code"
    TOKEN_REFRESH_TOKEN = "token.refresh_token"
    TOKEN_CLIENT_CREDENTIALS = "token.client_credentials"
    INTROSPECTION = "introspection"
    REVOCATION = "revocation"
    REVOCATION_ACCESS_TOKEN = "revocation.access_token"
    REVOCATION_GRANT = "revocation.grant"
    USERINFO = "userinfo"
    ADMIN_LOGIN = "admin.login"
    ADMIN_LOGOUT = "admin.logout"
    ADMIN_VIEW = "admin.view"
    #: Records of other writers (a resource server's exported trail) added to the store (issue 16).
    AUDIT_IMPORT = "audit.import"
    #: A resource server's decision on one request (corridor.resource).
    RS_ACCESS = "rs.access"
    #: What an allowed action did once its route ran (issue 16), linked to its rs.access record
    #: by the request id.
    RS_RESULT = "rs.result"


class Outcome(StrEnum):
    """How the step ended."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    SUCCEEDED = "succeeded"
    SHOWN = "shown"
    GRANTED = "granted"
    DENIED = "denied"
    ISSUED = "issued"
    REVOKED = "revoked"
    ACTIVE = "active"
    INACTIVE = "inactive"
    ALLOWED = "allowed"
    ENROLLED = "enrolled"
    #: An allowed action's route ran and answered (rs.result).
    COMPLETED = "completed"
    IMPORTED = "imported"
    #: Refusals of one source and kind counted into one record (issue 13 B4).
    AGGREGATED = "aggregated"
