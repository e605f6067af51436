"""Worker functions for the race tests, in a module of their own that imports little, so that
spawned processes start in a fraction of a second (a spawned worker imports the module of its
function; the test modules import the AS, the examples and their helpers)."""

from __future__ import annotations

import ssl
from typing import Any

import httpx


def post_after_barrier(url: str, headers: dict[str, str], body: dict[str, Any], ca: str, barrier: Any) -> int:
    """Connect, wait for the others, then POST ``body``; the status code."""
    with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=60) as http:
        http.get(url.rsplit("/", 1)[0] + "/.well-known/oauth-protected-resource")  # connected first
        barrier.wait()
        return http.post(url, headers=headers, json=body).status_code
