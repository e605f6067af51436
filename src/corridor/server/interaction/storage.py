"""Every store call of the interaction, in one place, through the store's repositories (design.md 4)."""

from __future__ import annotations

from corridor.core.randomness import new_id, new_secret_token, token_hash
from corridor.server.authority import AuthorizationServer
from corridor.store.sql import Row


def start_interaction(server: AuthorizationServer, ref_hash: str, now: float) -> tuple[str, str]:
    """A new interaction for the pushed request ``ref_hash``: its id and the browser's secret."""
    interaction_id, secret, csrf = new_id(), new_secret_token(), new_secret_token()
    lifetime = server.settings.interaction_lifetime
    server.store.requests.save_interaction(
        interaction_id, token_hash(secret), ref_hash, csrf, now, now + lifetime
    )
    return interaction_id, secret


def find_interaction_and_pushed(
    server: AuthorizationServer, interaction_id: str
) -> tuple[Row | None, Row | None]:
    """An interaction and its pushed request (None where there is none), in one read."""
    return server.store.requests.interaction_and_pushed(interaction_id)


def find_pushed_request(server: AuthorizationServer, ref_hash: str) -> Row | None:
    return server.store.requests.pushed(ref_hash)


def find_user(server: AuthorizationServer, user_id: str) -> Row | None:
    return server.store.users.get(user_id)


def has_passkeys(server: AuthorizationServer, user_id: str) -> bool:
    return bool(server.store.users.passkeys(user_id))


def find_session(server: AuthorizationServer, cookie: str | None) -> Row | None:
    """The browser session a session cookie names (stored by the hash of its value)."""
    return server.store.requests.browser_session(token_hash(cookie)) if cookie else None


def start_session(server: AuthorizationServer, user_id: str, acr: str, now: float) -> tuple[str, int]:
    """A new browser session at ``acr``: the cookie's value and lifetime."""
    secret, lifetime = new_secret_token(), server.settings.session_lifetime
    server.store.requests.save_browser_session(token_hash(secret), user_id, now, acr, now + lifetime)
    return secret, lifetime


def raise_session(server: AuthorizationServer, cookie: str, acr: str, now: float) -> None:
    """The session the cookie names now stands at ``acr``, signed in at ``now``."""
    server.store.requests.raise_browser_session(token_hash(cookie), acr, now)
