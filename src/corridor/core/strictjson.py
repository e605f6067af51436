"""Parsing untrusted JSON (RFC 8259) strictly: what Python's json module lets through
but nothing downstream can handle is refused here, as a ValueError.

- NaN, Infinity and numbers that overflow to infinity (RFC 8259 6 has no such values);
- lone surrogates in strings (not valid Unicode, RFC 8259 8.2; they break UTF-8 encoding);
- nesting deep enough to exhaust the recursion limit.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def loads(data: str | bytes) -> Any:
    """Parse JSON text; every malformed or hostile input raises ValueError."""
    try:
        value = json.loads(data, parse_constant=_no_constants, parse_float=_finite)
        # Lone surrogates survive json.loads; UTF-8 encoding finds them.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (RecursionError, UnicodeError, TypeError) as exc:
        raise ValueError("not acceptable JSON") from exc
    return value
