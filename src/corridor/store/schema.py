"""Tables. Times are float seconds since the epoch from the injectable clock.
Credentials (codes, tokens, request_uri references, session ids) are stored only
as SHA-256 hashes. Changes go through an Alembic migration in ``migrations/``."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(255), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(255), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    #: RFC 6238 TOTP shared secret (base32) when the user enrolled one (``corridor user totp``).
    Column("totp_secret", String(64)),
    #: Issue 18: set by ``corridor user disable`` (no sign-in, no new grant), cleared by ``enable``.
    Column("disabled_at", Float),
    #: Issue 18: when ``corridor user passwd`` last set the password (None: as added).
    Column("password_changed_at", Float),
)

#: WebAuthn credentials (passkeys) a user enrolled from the sign-in pages (issue 8, server/passkeys.py).
#: The public key is public; the counter detects a cloned authenticator (WebAuthn 6.1.1).
passkeys = Table(
    "passkeys",
    metadata,
    #: base64url of the credential ID (at most 1023 bytes, WebAuthn 5.1).
    Column("credential_id", String(1400), primary_key=True),
    Column("user_id", String(64), nullable=False),
    #: base64url of the COSE_Key from the attested credential data.
    Column("public_key", Text, nullable=False),
    Column("sign_count", BigInteger, nullable=False),
    Column("aaguid", String(36), nullable=False),
    Column("transports", Text, nullable=False),
    Column("backed_up", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Index("ix_passkeys_user", "user_id"),
)

#: Issue 13 C4: an operator's single-use link that lets a user bind a first strong factor
#: (``corridor user enrol``); only the SHA-256 of the link's secret is kept.
enrolment_links = Table(
    "enrolment_links",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("consumed_at", Float),
)

resource_servers = Table(
    "resource_servers",
    metadata,
    Column("identifier", String(1024), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("introspection_client_id", String(255)),
    Column("created_at", Float, nullable=False),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(255), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("private_jwk", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    #: When the key starts signing; it is published from ``created_at`` on (server/keys.py).
    Column("activates_at", Float),
)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
)

pushed_requests = Table(
    "pushed_requests",
    metadata,
    Column("ref_hash", String(64), primary_key=True),
    Column("client_id", String(255), nullable=False),
    Column("parameters", Text, nullable=False),
    Column("dpop_jkt", String(64)),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("consumed_at", Float),
)

interactions = Table(
    "interactions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("ref_hash", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

browser_sessions = Table(
    "browser_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("auth_time", Float, nullable=False),
    Column("acr", String(32), nullable=False),
    Column("expires_at", Float, nullable=False),
)

grants = Table(
    "grants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(255), nullable=False),
    # NULL (with auth_time and acr) in a client credentials grant: no user (RFC 6749 4.4).
    Column("user_id", String(64)),
    Column("scope", Text, nullable=False),
    Column("authorization_details", Text),
    Column("resources", Text, nullable=False),
    Column("auth_time", Float),
    Column("acr", String(32)),
    Column("refresh_token_hash", String(64), unique=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("revoked_reason", String(64)),
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("grant_id", String(64), nullable=False),
    Column("client_id", String(255), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("code_challenge", String(64), nullable=False),
    Column("dpop_jkt", String(64)),
    Column("nonce", String(255)),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("consumed_at", Float),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("grant_id", String(64), nullable=False),
    Column("client_id", String(255), nullable=False),
    Column("cnf_method", String(16), nullable=False),
    Column("cnf_thumbprint", String(64), nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float),
    Index("ix_access_tokens_grant", "grant_id"),
)

replay_cache = Table(
    "replay_cache",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("expires_at", Float, nullable=False),
)

#: Failed sign-in attempts (issue 13 C1, C2; design.md 5c), one row per throttled subject: an
#: account (``user:ID``, or ``name:HASH`` for a name no account has), a source address
#: (``source:IP``) or a user's second factor (``totp:ID``). Kept here, not in a process, so the
#: wait holds across restarts and between instances; the purge removes a row at ``expires_at``.
sign_in_throttle = Table(
    "sign_in_throttle",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("failures", Integer, nullable=False),
    #: No attempt is checked before this time (0: not waiting).
    Column("locked_until", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

#: Signed-in administrators of the evidence page (/admin/trace, issue 13 C3), so a sign-out or
#: an expiry ends a session on every instance. ``acr`` "password" with a second factor still
#: due is a session half-way through signing in; ``expires_at`` is absolute, ``last_seen_at``
#: the start of the idle window.
admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("acr", String(32), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

#: Issue 17: signed messages kept as non-repudiation evidence (the client's request object at
#: PAR, the AS's JARM response), by the SHA-256 of the compact JWS that the audit record names.
signed_messages = Table(
    "signed_messages",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("client_id", String(255), nullable=False),
    Column("jws", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_signed_messages_created_at", "created_at"),
)

audit_records = Table(
    "audit_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("event", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("rule", String(128)),
    Column("error", String(64)),
    Column("client_id", String(255)),
    Column("user_id", String(64)),
    Column("issuer", String(1024)),
    Column("redirect_uri", Text),
    Column("scope", Text),
    Column("authorization_details", Text),
    Column("resource", Text),
    Column("sender_constraint", String(16)),
    Column("key_thumbprint", String(64)),
    Column("grant_id", String(64)),
    Column("token_jti", String(64)),
    Column("request_id", String(64)),
    Column("detail", Text),
    # The hash chain (issue 8, design.md 5b): one chain per writer (an AS process, an RS), so no
    # global order is needed; hash = SHA-256 of the JCS (RFC 8785) form of every other column.
    Column("writer", String(128)),
    Column("seq", Integer),
    Column("prev_hash", String(64)),
    Column("hash", String(64)),
    Index("ix_audit_grant", "grant_id"),
    Index("ix_audit_request", "request_id"),
    Index("ix_audit_token", "token_jti"),
    Index("ix_audit_chain", "writer", "seq", unique=True),
)

#: The last record of each chain: appends lock it (one writer's records in order), and
#: verification compares it with the records, so a deleted tail shows.
audit_heads = Table(
    "audit_heads",
    metadata,
    Column("writer", String(128), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

#: Signed statements about the chains (JWS by the AS signing key), so a chain can be checked
#: outside Corridor and a rewritten or cut chain shows against an earlier checkpoint. Since issue 13
#: E2 one row per round names every writer: ``writer`` is ``*``, ``seq`` the number of writers,
#: ``hash`` the SHA-256 of ``heads`` (JCS of {writer: {seq, hash}}), which the JWS signs. Older rows
#: are one statement "chain W had hash H at record S" each (``heads`` NULL).
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("writer", String(128), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("time", Float, nullable=False),
    Column("jws", Text, nullable=False),
    Column("heads", Text),
)

# The purge job finds expired rows by index (migration 0002).
for _table in (
    replay_cache,
    pushed_requests,
    interactions,
    browser_sessions,
    authorization_codes,
    access_tokens,
    grants,
    enrolment_links,
    sign_in_throttle,
    admin_sessions,
):
    Index(f"ix_{_table.name}_expires_at", _table.c.expires_at)
