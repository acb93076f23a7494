"""canonical_json's fast path writes exactly the bytes rfc8785 writes (RFC 8785)."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.leaf import json_string
from audit.services import canonical_json

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
