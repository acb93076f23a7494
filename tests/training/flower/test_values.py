"""fedgov_flower.values narrows record values exactly as int() and float() do."""

from __future__ import annotations

import pytest

from fedgov_flower.values import as_float, as_int

# Every type a Flower ConfigRecord, MetricRecord or run config can hold, and a few more.
VALUES = [0, -3, 7, 2**70, 1.0, 2.9, -0.5, float("nan"), float("inf"), True, False, "12",
          " 12 ", "1.5", "x", "", b"8", b"2.5", b"z", [1], [1.0], ["a"], [], None, {}]  # fmt: skip


def outcome(function, value):
    try:
        return ("value", function(value))
    except (TypeError, ValueError, OverflowError) as exc:
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize("value", VALUES, ids=[repr(v) for v in VALUES])
def test_as_int_behaves_as_int(value):
    assert outcome(as_int, value) == outcome(int, value)


@pytest.mark.parametrize("value", VALUES, ids=[repr(v) for v in VALUES])
def test_as_float_behaves_as_float(value):
    got, want = outcome(as_float, value), outcome(float, value)
    if want[0] == "value" and want[1] != want[1]:  # NaN is not equal to itself
        assert got[0] == "value" and got[1] != got[1]
    else:
        assert got == want
