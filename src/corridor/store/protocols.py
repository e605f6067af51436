"""What the rest of Corridor may ask of the store: one Protocol per repository, and the unit
of work that runs them in one write transaction (design.md 4). Callers type against these;
the SQL implementations live beside them in store/ (clients.py, users.py, ...)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

Row = dict[str, Any]


class RemovedClient(NamedTuple):
    """What removing a client revoked."""

    grants: int
    access_tokens: int


class RevokedGrants(NamedTuple):
    """What revoking a user's grants revoked (issue 18)."""

    grants: int
    access_tokens: int


class AttemptPolicy(Protocol):
    """How long a throttled subject waits after its n-th consecutive failure, and how long a
    quiet subject's count is kept (server/signin.py decides; the store only keeps count)."""

    def wait(self, key: str, failures: int) -> float: ...

    def forget(self, key: str) -> float: ...


class Clients(Protocol):
    """Registered clients and resource servers (``changes`` counts this process's edits)."""

    @property
    def changes(self) -> int: ...

    def add(self, client_id: str, name: str, client_metadata: Mapping[str, Any], now: float) -> None: ...

    def get(self, client_id: str) -> Row | None: ...

    def update(self, client_id: str, name: str, client_metadata: Mapping[str, Any]) -> bool: ...

    def all(self) -> list[Row]: ...

    def remove(self, client_id: str, now: float) -> RemovedClient | None: ...

    def add_resource_server(
        self, identifier: str, name: str, scopes: list[str], introspection_client_id: str | None, now: float
    ) -> None: ...

    def resource_servers(self) -> list[Row]: ...

    def remove_resource_server(self, identifier: str) -> bool: ...


class Users(Protocol):
    """Users and their factors: password, TOTP secret, passkeys, passkey enrolment links."""

    def add(self, user_id: str, username: str, password_hash: str, now: float) -> None: ...

    def get(self, user_id: str) -> Row | None: ...

    def by_name(self, username: str) -> Row | None: ...

    def all(self) -> list[Row]: ...

    def set_totp_secret(self, username: str, secret: str | None) -> bool: ...

    def set_password(self, user_id: str, password_hash: str, now: float) -> bool: ...

    def rehash_password(self, user_id: str, old_hash: str, new_hash: str) -> bool: ...

    def set_disabled(self, user_id: str, disabled_at: float | None) -> bool: ...

    def lock_enabled(self, user_id: str) -> bool: ...

    def remove(self, username: str) -> bool: ...

    def add_passkey(self, **values: Any) -> bool: ...

    def passkey(self, credential_id: str) -> Row | None: ...

    def passkeys(self, user_id: str) -> list[Row]: ...

    def use_passkey(self, credential_id: str, seen_count: int, new_count: int, now: float) -> bool: ...

    def remove_passkey(self, user_id: str, credential_id: str) -> bool: ...

    def add_enrolment_link(self, token_hash: str, user_id: str, now: float, expires_at: float) -> None: ...

    def enrolment_link(self, token_hash: str) -> Row | None: ...

    def add_passkey_with_link(self, token_hash: str, now: float, **passkey: Any) -> bool | None: ...


class Requests(Protocol):
    """Pushed authorization requests, browser interactions, browser and administrator sessions."""

    def save_pushed(
        self,
        ref_hash: str,
        client_id: str,
        parameters: Mapping[str, Any],
        dpop_jkt: str | None,
        now: float,
        expires_at: float,
    ) -> None: ...

    def pushed(self, ref_hash: str) -> Row | None: ...

    def consume_pushed(self, ref_hash: str, now: float) -> bool: ...

    def save_interaction(
        self, interaction_id: str, secret_hash: str, ref_hash: str, csrf: str, now: float, expires_at: float
    ) -> None: ...

    def interaction(self, interaction_id: str) -> Row | None: ...

    def interaction_and_pushed(self, interaction_id: str) -> tuple[Row | None, Row | None]: ...

    def save_browser_session(
        self, id_hash: str, user_id: str, auth_time: float, acr: str, expires_at: float
    ) -> None: ...

    def raise_browser_session(self, id_hash: str, acr: str, auth_time: float) -> bool: ...

    def browser_session(self, id_hash: str) -> Row | None: ...

    def save_admin_session(self, **values: Any) -> None: ...

    def admin_session(self, id_hash: str) -> Row | None: ...

    def update_admin_session(self, id_hash: str, **values: Any) -> bool: ...

    def remove_admin_session(self, id_hash: str) -> bool: ...

    def end_user_sessions(self, user_id: str) -> int: ...


class Grants(Protocol):
    """Grants, codes, access and refresh tokens, and their revocation."""

    def insert(self, **values: Any) -> None: ...

    def get(self, grant_id: str) -> Row | None: ...

    def by_refresh_token(self, rt_hash: str) -> Row | None: ...

    def lock(self, grant_id: str) -> Row | None: ...

    def revoke(self, grant_id: str, now: float, reason: str) -> bool: ...

    def listed(
        self, user_id: str | None = None, client_id: str | None = None, limit: int = 100
    ) -> list[Row]: ...

    def access_tokens(self, grant_id: str) -> list[Row]: ...

    def revoke_all(
        self,
        now: float,
        reason: str,
        *,
        grant_id: str | None = None,
        user_id: str | None = None,
        client_id: str | None = None,
    ) -> list[Row]: ...

    def revoke_user(self, user_id: str, now: float, reason: str) -> RevokedGrants: ...

    def count_active(self, user_id: str, now: float) -> int: ...

    def set_refresh_token(self, grant_id: str, rt_hash: str) -> None: ...

    def insert_code(self, **values: Any) -> None: ...

    def code(self, code_hash: str) -> Row | None: ...

    def consume_code(self, code_hash: str, now: float) -> bool: ...

    def insert_access_token(self, **values: Any) -> None: ...

    def access_token(self, jti: str) -> Row | None: ...

    def revoke_access_token(self, jti: str, now: float) -> bool: ...


class Replay(Protocol):
    """Single-use keys (replay caches) and the sign-in throttle's counts."""

    def remember_once(self, key: str, expires_at: float, now: float) -> bool: ...

    def is_remembered(self, key: str, now: float) -> bool: ...

    def count_attempt(
        self, keys: Sequence[str], now: float, policy: AttemptPolicy
    ) -> tuple[bool, dict[str, Row]]: ...

    def forgive_attempt(
        self, reset: Sequence[str], undo: Sequence[str], now: float, policy: AttemptPolicy
    ) -> None: ...

    def throttle_state(self, key: str, now: float) -> Row: ...


class Keys(Protocol):
    """Signing keys and the secrets every instance shares."""

    def signing_keys(self) -> list[Row]: ...

    def add_signing_key(
        self,
        kid: str,
        alg: str,
        private_jwk: Mapping[str, Any],
        state: str,
        now: float,
        activates_at: float | None = None,
    ) -> None: ...

    def add_first_signing_key(
        self, kid: str, alg: str, private_jwk: Mapping[str, Any], now: float
    ) -> bool: ...

    def secret(self, name: str, make: Callable[[], str], now: float) -> str: ...


class Audit(Protocol):
    """The evidence records' hash chains, checkpoints and retention (rows only)."""

    def append(
        self, writer: str, record: Mapping[str, Any], seal: Callable[[Mapping[str, Any]], str]
    ) -> Row: ...

    def adopt(self, writer: str, rows: Sequence[Mapping[str, Any]]) -> int: ...

    def heads(self) -> dict[str, Row]: ...

    def writers(self) -> set[str]: ...

    def chain(self, writer: str) -> list[Row]: ...

    def chain_between(self, writer: str, first_seq: int, last_seq: int) -> list[Row]: ...

    def records(
        self,
        grant_id: str | None = None,
        request_id: str | None = None,
        token_jti: str | None = None,
        interaction: str | None = None,
        par: str | None = None,
    ) -> list[Row]: ...

    def checkpoints(self) -> list[Row]: ...

    def last_checkpoint_hash(self, writer: str) -> str | None: ...

    def add_checkpoint(self, row: Mapping[str, Any]) -> int: ...

    def checkpoint_heads_before(self, writer: str, cutoff: float) -> str | None: ...

    def purge(self, writer: str, through_seq: int, batch: int = 1000) -> int: ...

    def oldest_time(self) -> float | None: ...


class SignedMessages(Protocol):
    """Signed messages kept as evidence (issue 17): request objects and JARM responses by SHA-256."""

    def keep(self, sha256: str, kind: str, client_id: str, jws: str, now: float) -> None: ...

    def get(self, sha256: str) -> Row | None: ...

    def purge_before(self, time: float) -> int: ...


class Repositories(Protocol):
    """Every repository; a Store's run each statement on its own, a unit's in its transaction."""

    @property
    def clients(self) -> Clients: ...

    @property
    def users(self) -> Users: ...

    @property
    def requests(self) -> Requests: ...

    @property
    def grants(self) -> Grants: ...

    @property
    def replay(self) -> Replay: ...

    @property
    def keys(self) -> Keys: ...

    @property
    def audit(self) -> Audit: ...

    @property
    def messages(self) -> SignedMessages: ...


class UnitOfWork(Repositories, Protocol):
    """One write transaction (design.md 4): everything done through it commits together when
    the ``with`` block ends, or rolls back together when it raises."""
