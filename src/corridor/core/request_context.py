"""What the log line of one HTTP request says about it, gathered while it runs (issue 18).

The AS's outermost middleware (server/app.py) opens a :class:`RequestFacts` per request; the
evidence records of that request take its ``request_id`` (:func:`current_request_id`), so a log
line and the audit records of one request carry the same id; the audit log and the error
renderers fill in the client and the rule of a refusal. A context variable carries it: Starlette's
``run_in_threadpool`` copies the context into the worker thread, and the object is shared, so
what the thread fills in is what the middleware logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

from corridor.core.randomness import new_id


@dataclass
class RequestFacts:
    """One request: its id, and what its checks learnt (never a credential)."""

    request_id: str
    #: The path template of the route that answered (``/interaction/{interaction_id}``), never
    #: the raw path; None when no route matched.
    route: str | None = None
    #: The authenticated or named client, once known.
    client_id: str | None = None
    #: The rule of a refusal (``core.rules.Rule``), and its OAuth error code.
    rule: str | None = None
    error: str | None = None


_CURRENT: ContextVar[RequestFacts | None] = ContextVar("corridor_request_facts", default=None)


def open_facts() -> tuple[RequestFacts, Token[RequestFacts | None]]:
    """Open the facts of one request (the middleware's); :func:`close_facts` with the token
    when it ends (a pair of calls: cheaper per request than a generator context manager)."""
    facts = RequestFacts(request_id=new_id())
    return facts, _CURRENT.set(facts)


def close_facts(token: Token[RequestFacts | None]) -> None:
    _CURRENT.reset(token)


@contextmanager
def request_facts() -> Iterator[RequestFacts]:
    """Open the facts of one request, closed when it ends."""
    facts, token = open_facts()
    try:
        yield facts
    finally:
        close_facts(token)


def current_facts() -> RequestFacts | None:
    return _CURRENT.get()


def current_request_id() -> str:
    """The id of the request being served, or a new one outside a request (CLI, jobs)."""
    facts = _CURRENT.get()
    return facts.request_id if facts is not None else new_id()


def note_refusal(rule: str | None, error: str | None, client_id: str | None = None) -> None:
    """Record on the current request (if any) the rule and error code it was refused with."""
    facts = _CURRENT.get()
    if facts is None:
        return
    if rule and facts.rule is None:
        facts.rule = str(rule)
    if error and facts.error is None:
        facts.error = error
    if client_id and facts.client_id is None:
        facts.client_id = client_id


def note_client(client_id: str | None) -> None:
    facts = _CURRENT.get()
    if facts is not None and client_id and facts.client_id is None:
        facts.client_id = client_id
