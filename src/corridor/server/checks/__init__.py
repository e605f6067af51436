"""Named checks: one rule each, composed into endpoint pipelines (design.md 2)."""

from collections.abc import Callable, Sequence

from corridor.server.authority import Exchange

Check = Callable[[Exchange], None]


def run(checks: Sequence[Check], exchange: Exchange) -> None:
    for check in checks:
        check(exchange)
