"""The JCS form (RFC 8785) of the audit chain's objects, byte for byte ``rfc8785.dumps`` (issue 19).

Every hash of the chain (audit/chain.py) and every line of a JSON Lines trail (audit/sinks.py) is
the JCS form of a flat object: column names for keys, and for values strings, null, integers and
the record's time (a float). :func:`dumps` writes such an object with orjson (C), on a fast path
that is taken only where orjson provably writes the same bytes as RFC 8785; anything else goes
to the ``rfc8785`` library, as every object did before. What makes the fast path exact:

* RFC 8785 3.2.3 sorts members by the UTF-16 code units of their names; orjson's ``OPT_SORT_KEYS``
  sorts by UTF-8 bytes (code points). The two orders differ only for names with characters above
  U+FFFF, so the fast path takes ASCII names only (where both are the byte order).
* RFC 8785 3.2.2.2 strings: ``"`` and ``\\`` escaped, U+0000-U+001F as ``\\b \\t \\n \\f \\r``
  or ``\\u00xx`` (lower-case hex), everything else (U+007F, U+2028, non-BMP, ...) as raw UTF-8.
  orjson writes strings exactly so (tests/audit/test_jcs.py checks every code point); a lone
  surrogate makes orjson raise, and the fallback then raises as ``rfc8785`` always did. Any other
  ``str`` subclass than the records' own enumerations is given to orjson as its ``str`` content,
  which is what ``rfc8785`` writes, whatever orjson would make of its class.
* RFC 8785 3.2.2.3 numbers (ECMA-262 Number::toString): integers within +-(2**53 - 1) are their
  decimal digits in both (outside it, ``rfc8785`` raises: fallback). A float is written here, not
  by orjson: Python's ``repr`` has the same shortest round-trip digits as ECMA-262 (the closest of
  the shortest, 7.1.12.1 step 5), in positional notation for 1e-4 <= |x| < 1e16, where ECMA-262
  is positional too (it switches at 1e-6 and 1e21), with a ``.0`` ECMA-262 omits; so such a float
  is its ``repr`` less a trailing ``.0`` (``rfc8785``'s own steps for a ``repr`` without exponent),
  0.0 and -0.0 are ``0``, and any other (exponent, NaN, infinity) takes the fallback.
* ``true``, ``false`` and ``null`` are the same words in both.

Nested objects and arrays, non-ASCII names, other types (``bool`` aside, subclasses of ``int``
and ``float`` included) and anything orjson refuses take the fallback.
"""

from __future__ import annotations

from typing import Any

import orjson
import rfc8785

from corridor.audit.events import Event, Outcome
from corridor.core.rules import Rule

#: RFC 8785 3.2.2.3 / I-JSON (RFC 7493 2.2): the integers an IEEE 754 double holds exactly.
SAFE_INTEGER = 2**53 - 1
#: Values orjson writes as RFC 8785 does, as they are: plain strings, null, true and false, and
#: the string enumerations of records (a member's ``str`` content is its value, checked for every
#: member by tests/audit/test_jcs.py, so orjson writes that string whether it reads the member as
#: a ``str`` or as an enumeration).
_PLAIN: frozenset[type] = frozenset({str, type(None), bool, Event, Outcome, Rule})


def dumps(value: Any) -> bytes:
    """``rfc8785.dumps(value)``, faster for a flat object (see the module's docstring)."""
    if type(value) is dict:
        fast = _flat(value)
        if fast is not None:
            return fast
    return rfc8785.dumps(value)


def es_number(number: float) -> str | None:
    """ECMA-262 Number::toString of a float (RFC 8785 3.2.2.3) where it is positional in both
    notations (1e-4 <= |x| < 1e16, and zero); None for any other float."""
    if number == 0:
        return "0"  # -0.0 too (ECMA-262 7.1.12.1 step 2)
    text = repr(number)
    if "e" in text or "n" in text:  # an exponent, or inf / nan
        return None
    return text[:-2] if text.endswith(".0") else text


def _flat(obj: dict[Any, Any]) -> bytes | None:
    """The JCS form of a flat object by orjson, or None where that is not proved the same."""
    try:
        if not "".join(obj).isascii():
            return None
    except TypeError:  # a name that is not a string: rfc8785 says why
        return None
    others = [name for name, value in obj.items() if type(value) not in _PLAIN]
    if others:
        written: dict[str, Any] = {}
        for name in others:
            value = obj[name]
            kind = type(value)
            if kind is int:
                if not -SAFE_INTEGER <= value <= SAFE_INTEGER:
                    return None
            elif kind is float:
                number = es_number(value)
                if number is None:
                    return None
                written[name] = orjson.Fragment(number)
            elif isinstance(value, str):
                written[name] = str.__str__(value)  # its content, as rfc8785 writes it
            else:
                return None
        if written:
            obj = {**obj, **written}
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # a lone surrogate (or a name orjson refuses): rfc8785 decides
        return None
