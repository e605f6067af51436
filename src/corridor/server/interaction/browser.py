"""The browser's side of an interaction: its cookies, the session cookie and refusals as pages."""

from __future__ import annotations

from starlette.responses import Response

SESSION_COOKIE = "__Host-corridor-session"


def cookie_header(name: str, value: str, max_age: int, same_site: str = "Lax") -> str:
    """A __Host- cookie: Secure, HttpOnly, Path=/, no Domain."""
    return f"{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={max_age}"


def interaction_cookie(interaction_id: str) -> str:
    """The cookie that ties one interaction to the browser that began it (RFC 9700 4.4)."""
    return f"__Host-ia-{interaction_id}"


def clear_interaction_cookie(interaction_id: str) -> str:
    return cookie_header(interaction_cookie(interaction_id), "", 0)


class Refusal(Exception):
    """Ends a browser request with an error page or an error redirect."""

    def __init__(self, response: Response) -> None:
        self.response = response


def end_interaction(interaction_id: str, refusal: Refusal) -> Refusal:
    """An interaction that is over (completed, or its pushed request gone) takes its cookie
    with it, so a browser that loses many races does not carry their cookies past the 16 KiB
    cap on a request head (issue 13 B1)."""
    refusal.response.headers.append("Set-Cookie", clear_interaction_cookie(interaction_id))
    return refusal
