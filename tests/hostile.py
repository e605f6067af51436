"""Hostile data for property tests: JSON that Python's parser accepts but nothing downstream
should (NaN, Infinity, lone surrogates, absurd nesting), base64url look-alikes, values that
break naive code, and correctly signed JWSs carrying any of them."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import strategies as st
from joserfc.jws import JWSRegistry

from corridor.core.b64 import b64url_encode
from corridor.core.jose import SigningKey

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
#: Any Python string a JSON parser can hand back, lone surrogates included ("\ud800" escapes).
json_text = st.text(st.characters() | surrogates, max_size=20)
#: Scalars; floats include NaN and +-inf.
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | json_text
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(json_text, kids, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(json_text, json_values, max_size=6)
#: JSON nested deeper than any sane document (arrays and objects, sometimes closed).
deep_json = st.builds(
    lambda depth, opener, closed: opener * depth + ("]" if opener == "[" else "}") * depth * closed,
    st.integers(1, 4000),
    st.sampled_from(["[", '{"a":']),
    st.booleans(),
)
b64ish = st.text(B64URL, max_size=64)

#: Values that break naive code: non-finite and huge numbers, surrogates, NUL, quotes, wrong types.
INTERESTING: list[Any] = [
    math.nan, math.inf, -math.inf, 10**400, -1, 0, True, "", "\ud800", "\x00", "中", 'x"y', "a" * 300,
    [], {}, "none", "HS256", "RS256", "ES256", "PS256", "EdDSA", "dpop+jwt", "JWT",
]  # fmt: skip
#: A mutation value meaning "remove the field".
DELETE = object()


def dumps(value: Any) -> str:
    """JSON as a hostile peer may send it: NaN/Infinity allowed, surrogates as escapes."""
    return json.dumps(value)


def enc(value: Any) -> str:
    return b64url_encode(dumps(value).encode())


def enc_text(text: str) -> str:
    return b64url_encode(text.encode())


def sign_text(key: SigningKey, header: Any, payload: str) -> str:
    """A correctly signed compact JWS over any header and payload, however hostile."""
    signing_input = f"{enc(header)}.{enc_text(payload)}"
    signature = JWSRegistry.algorithms[key.alg].sign(signing_input.encode(), key.key)
    return f"{signing_input}.{b64url_encode(signature)}"


def sign_json(key: SigningKey, header: Any, claims: Any) -> str:
    return sign_text(key, header, dumps(claims))


@st.composite
def mutations(draw: st.DrawFn, names: tuple[str, ...]) -> tuple[str, Any]:
    """One field and what happens to it: deleted, or replaced by an interesting or any JSON value."""
    name = draw(st.sampled_from(names) | json_text)
    value = draw(st.just(DELETE) | st.sampled_from(INTERESTING) | json_values | b64ish)
    return name, value


def apply(target: dict[str, Any], mutation: tuple[str, Any]) -> None:
    name, value = mutation
    if value is DELETE:
        target.pop(name, None)
    else:
        target[name] = value
