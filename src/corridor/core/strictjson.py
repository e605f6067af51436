"""Parsing untrusted JSON (RFC 8259) strictly: what Python's json module lets through
but nothing downstream can handle is refused here, as a ValueError.

- NaN, Infinity and numbers that overflow to infinity (RFC 8259 6 has no such values);
- lone surrogates in strings (not valid Unicode, RFC 8259 8.2; they break UTF-8 encoding);
- nesting deep enough to exhaust the recursion limit, and in fact anything deeper or larger than
  core/json_limits.py allows (issue 13 B5): those raise its JSONLimitError, a ValueError.
"""

from __future__ import annotations

import json
import math
from typing import Any

from corridor.core.json_limits import MAX_DEPTH, MAX_SIZE, check_json_limits


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


#: Built once: ``json.loads`` with keyword arguments builds a new decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite)


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH, max_size: int = MAX_SIZE) -> Any:
    """Parse JSON text; every malformed or hostile input raises ValueError, and a document
    beyond ``max_depth`` or ``max_size`` the JSONLimitError kind of it (issue 13 B5).

    Bytes must be UTF-8 (RFC 8259 8.1), decoded strictly, so surrogates cannot arrive raw; a
    lone one can then only come from a ``\\u`` escape, and only text with escapes pays for the
    check (encoding the parsed value finds them)."""
    check_json_limits(data, max_depth, max_size)
    try:
        if isinstance(data, bytes | bytearray):
            text, unchecked = data.decode("utf-8"), False  # strict: no raw surrogates
        else:
            text, unchecked = data, not data.isascii()  # a str may carry them raw
        value = _DECODER.decode(text)
        if unchecked or "\\u" in text:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (RecursionError, UnicodeError, TypeError) as exc:
        raise ValueError("not acceptable JSON") from exc
    return value
