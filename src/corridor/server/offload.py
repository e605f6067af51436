"""Running a request's synchronous work (its checks, statements and signatures) off the event loop.

Every AS endpoint is a synchronous function of one request (design.md 2): it runs on a worker
thread so that a slow statement or a password hash never stalls the other connections. The hop
is ``loop.run_in_executor`` on one dedicated executor, with the request's context copied in (the
request's facts, core/request_context.py, are what the thread fills in and the access line
reads). Issue 19 measured it against anyio's ``to_thread.run_sync`` (Starlette's
``run_in_threadpool``), whose capacity limiter, cancel scope and run-variable look-ups cost about
twice the CPU per hop (49 vs 20-33 us on this machine).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

#: As many threads as anyio's default limiter allows (40): enough for requests waiting on the
#: database or on a password hash (bounded separately, server/passwords.py) while others run.
WORKERS = 40

_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:  # threads start on first use: after ``--workers`` forked (listeners.py)
        _executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="corridor-request")
    return _executor


async def off_loop(func: Callable[[], T]) -> T:
    """``func()`` on a worker thread, in a copy of the caller's context."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), contextvars.copy_context().run, func)
