"""canonical_json's fast path writes exactly the bytes rfc8785 writes (RFC 8785)."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.leaf import json_string
from audit.services import canonical_bytes, canonical_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(), values, max_size=6))
def test_fast_path_and_rfc8785_agree_byte_for_byte(payload):
    try:
        expected = rfc8785.dumps(payload)
    except Exception:  # rfc8785 refuses it (e.g. a lone surrogate): so must we
        try:
            canonical_json(payload)
        except ValueError:
            return
        raise AssertionError("canonical_json accepted what rfc8785 refuses") from None
    assert canonical_json(payload) == expected


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_leaf_string_encoding_is_rfc8785(text):
    try:
        expected = rfc8785.dumps(text).decode()
    except Exception:
        return
    assert json_string(text) == expected


def test_integers_beyond_double_precision_are_refused():
    with pytest.raises(ValueError, match="canonical-JSON"):
        canonical_json({"n": 2**60})


edge_floats = st.sampled_from(
    [
        0.0,
        -0.0,
        1.0,
        -1.5,
        1e21,
        1e-7,
        1e-6,
        9.999999999999999e20,
        5e-324,
        1.7976931348623157e308,
        0.1,
        1 / 3,
        123456789012345680000.0,
        2.0**53,
        -(2.0**60),
    ]
) | st.floats(allow_nan=False, allow_infinity=False)
# Keys and strings beyond ASCII and the BMP (RFC 8785 sorts keys by UTF-16 code units,
# so "\U0001F600" sorts before "\uFFFD"), control characters, and floats deep inside.
keys = st.text() | st.sampled_from(["\U0001f600", "\ufffd", "é", "e", "E", "", "\x7f"])
deep = st.recursive(
    scalars | edge_floats | st.integers(min_value=-(2**60), max_value=2**60),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(deep)
def test_canonical_bytes_is_rfc8785_for_any_value(value):
    """Same bytes, or the same refusal (an integer beyond 2**53, a lone surrogate)."""
    try:
        expected = rfc8785.dumps(value)
    except Exception as exc:
        with pytest.raises(type(exc)):
            canonical_bytes(value)
        return
    assert canonical_bytes(value) == expected


def test_canonical_bytes_sorts_non_ascii_keys_by_utf16_next_to_floats():
    value = {"\ufffd": 1.5, "\U0001f600": [0.1, {"é": -0.0, "z": 1e21}], "a": None}
    assert canonical_bytes(value) == rfc8785.dumps(value)
