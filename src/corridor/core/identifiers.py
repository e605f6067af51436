"""Identifiers from outside, checked before they reach the store or a record (issue 13 B8).

A value longer than its column is an error on PostgreSQL (SQLite stores it), and so is a NUL
character: reaching the audit row raw, a 10 kB ``client_id`` was a 500 before any lookup. Every
identifier a request names is checked here first, and the endpoint answers its own OAuth error.
"""

from __future__ import annotations

import re

from corridor.core.text import has_unsafe_characters

#: The longest identifier stored (the client_id and user name columns are 255 characters).
MAX_IDENTIFIER = 255
#: RFC 6749 A.1, A.11, A.17: client_id, code and refresh token are visible ASCII (VSCHAR).
_VSCHAR = re.compile(r"[\x20-\x7e]+")


def is_vschar_identifier(value: object, max_length: int = MAX_IDENTIFIER) -> bool:
    """RFC 6749 A.1 (client_id), A.11 (code), A.17 (refresh_token), RFC 9126 2.2 (request_uri):
    1 to ``max_length`` visible ASCII characters."""
    return isinstance(value, str) and len(value) <= max_length and _VSCHAR.fullmatch(value) is not None


def is_text_identifier(value: object, max_length: int = MAX_IDENTIFIER) -> bool:
    """RFC 7515 4.1.4 (kid), RFC 7519 4.1.7 (jti): any Unicode string, but 1 to ``max_length``
    characters and no control or bidirectional formatting character (issue 13 B8)."""
    return isinstance(value, str) and 0 < len(value) <= max_length and not has_unsafe_characters(value)
