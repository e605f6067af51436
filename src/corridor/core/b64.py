"""base64url without padding (RFC 7515 2)."""

from __future__ import annotations

import binascii

#: base64url to the standard alphabet; "+", "/" and "=" (not base64url, RFC 4648 5) become "!",
#: which binascii's strict mode refuses like any other character outside the alphabet.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
#: Unused low bits of the last character, by its value and the text's length mod 4 (2: four
#: bits, 3: two bits): only the characters whose unused bits are zero end a canonical text.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_CANONICAL_LAST = {
    0: frozenset(_ALPHABET),
    2: frozenset(c for i, c in enumerate(_ALPHABET) if not i & 0b1111),
    3: frozenset(c for i, c in enumerate(_ALPHABET) if not i & 0b11),
}
_PADDING = {0: b"", 2: b"==", 3: b"="}


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 2): binascii directly, without base64's per-call wrappers."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded, canonical base64url; raises ValueError on anything else.

    Canonical (RFC 4648 3.5): the unused low bits of the last character are zero, so one byte
    string has exactly one encoding and a signature cannot be re-spelled (joserfc agrees).
    One C pass checks the alphabet: binascii's strict mode refuses every character outside it
    (and the translation turns the standard alphabet's own "+", "/", "=" into such a character)."""
    rest = len(text) % 4
    if not text or rest == 1 or text[-1] not in _CANONICAL_LAST[rest]:
        raise ValueError("not canonical base64url")
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("not base64url") from None
    return binascii.a2b_base64(raw.translate(_TO_STANDARD) + _PADDING[rest], strict_mode=True)
