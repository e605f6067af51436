"""core/json_limits.py and core/identifiers.py (issue 13 B5, B8), called directly.

The depth scan must agree with the real nesting of any document (strings, escaped quotes and
backslashes skipped), and strictjson must refuse every document beyond the bounds with a
ValueError, never a RecursionError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corridor.core import strictjson
from corridor.core.identifiers import is_text_identifier, is_vschar_identifier
from corridor.core.json_limits import MAX_DEPTH, JSONLimitError, check_json_limits, nesting_depth

#: Strings full of what confuses a naive scan: brackets, quotes, backslashes.
tricky_text = st.text(st.sampled_from('[]{}"\\ab\u202e'), max_size=12)
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(tricky_text, kids, max_size=3),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(documents)
def test_the_scan_finds_the_real_depth(value: Any) -> None:
    text = json.dumps(value)
    assert nesting_depth(text, 10_000) == depth_of(value)
    assert nesting_depth(text.encode(), 10_000) == depth_of(value)


@pytest.mark.parametrize("depth", [33, 493, 494, 10_000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_documents_are_refused_as_value_errors(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = opener * depth + "1" + closer * depth
    with pytest.raises(JSONLimitError, match="too deep"):
        strictjson.loads(text, max_size=10**7)
    with pytest.raises(ValueError):
        strictjson.loads(text.encode(), max_size=10**7)


def test_32_levels_are_accepted_and_the_size_is_bounded() -> None:
    assert depth_of(strictjson.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)) == MAX_DEPTH
    with pytest.raises(JSONLimitError, match="too large"):
        check_json_limits('"' + "x" * 70_000 + '"')
    check_json_limits("[1]", max_size=3)


def test_identifiers() -> None:
    bad: object
    assert is_vschar_identifier("c-" + "a" * 253)
    for bad in ("", "c" * 256, "c\x00", "c\n", "\uff43", "c\x7f", 7):
        assert not is_vschar_identifier(bad), bad
    assert is_text_identifier("ключ") and is_text_identifier("k" * 255)
    for bad in ("", "k" * 256, "k\x00", "k\u202e", "k\u2066", "k\x85", "k\u200f", None):
        assert not is_text_identifier(bad), bad
