"""Named checks: one rule each, composed into endpoint pipelines (design.md 2)."""

from collections.abc import Callable, Sequence
from typing import TypeVar

from corridor.server.authority import Exchange

Context = TypeVar("Context")
Check = Callable[[Exchange], None]


def run(checks: Sequence[Callable[[Context], None]], context: Context) -> None:
    """Each check in order over one request's context; the first refusal ends the request."""
    for check in checks:
        check(context)
