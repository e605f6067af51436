"""Bounds on every JSON document read from outside (issue 13 B5, design.md 5c).

Python's parser recurses once per nesting level, and so do jsonschema, Jinja2 and ``json.dumps``
after it: a document a few hundred levels deep passes one of them and breaks the next (a 500 at
PAR at 494 levels, on the consent page at 493). No protocol document we read needs more than a
handful of levels, so every one is measured before it is parsed: at most :data:`MAX_DEPTH`
levels and :data:`MAX_SIZE` bytes (callers may ask for less). The depth is found by one linear
scan that skips string contents, without recursion and without parsing.
"""

from __future__ import annotations

import re

#: Deepest nesting of arrays and objects accepted (RFC 8259 9 lets a parser set this limit).
MAX_DEPTH = 32
#: Largest document accepted, in bytes (characters for text): the form body bound.
MAX_SIZE = 64 * 1024

_TEXT_TOKENS = re.compile(r'[\[\]{}"\\]')
_BYTES_TOKENS = re.compile(rb'[\[\]{}"\\]')
_OPEN = frozenset("[{") | frozenset(b"[{")
_CLOSE = frozenset("]}") | frozenset(b"]}")
_QUOTE = ('"', ord('"'))
_BACKSLASH = ("\\", ord("\\"))


class JSONLimitError(ValueError):
    """A JSON document beyond the bounds; the message says which (``too deep``, ``too large``)."""


def nesting_depth(data: str | bytes, stop_after: int = MAX_DEPTH) -> int:
    """The deepest nesting of arrays and objects in ``data`` (strings skipped), counted up to
    one level beyond ``stop_after`` (the scan ends there). Malformed text gives some number;
    the parser refuses it afterwards."""
    tokens = _BYTES_TOKENS if isinstance(data, bytes | bytearray) else _TEXT_TOKENS
    depth = deepest = 0
    in_string = False
    escaped_at = -1
    for match in tokens.finditer(data):  # type: ignore[arg-type]
        at = match.start()
        if at == escaped_at:
            continue
        token = data[at]
        if in_string:
            if token in _BACKSLASH:
                escaped_at = at + 1
            elif token in _QUOTE:
                in_string = False
        elif token in _QUOTE:
            in_string = True
        elif token in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_after:
                    break
        elif token in _CLOSE:
            depth -= 1
    return deepest


def check_json_limits(data: str | bytes, max_depth: int = MAX_DEPTH, max_size: int = MAX_SIZE) -> None:
    """Issue 13 B5: refuse a document over ``max_size`` or nested deeper than ``max_depth``."""
    if len(data) > max_size:
        raise JSONLimitError(f"JSON document too large (over {max_size} bytes)")
    # No document nests deeper than it has openers (counted in C, strings included): most
    # documents, every JWS header and claim set we read, need no scan at all.
    if isinstance(data, str):
        openers = data.count("[") + data.count("{")
    else:
        openers = data.count(b"[") + data.count(b"{")
    if openers <= max_depth:
        return
    if nesting_depth(data, max_depth) > max_depth:
        raise JSONLimitError(f"JSON document too deep (over {max_depth} levels)")
